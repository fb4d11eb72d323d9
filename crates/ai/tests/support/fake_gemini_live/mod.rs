//! A strict, scriptable stand-in for the Gemini Live API (`BidiGenerateContent`).
//!
//! It listens on `127.0.0.1:0`, speaks the service's wire format (JSON
//! messages, sent as *binary* frames as the real service does) and is as
//! unforgiving as the real one: like the service answering an invalid
//! argument, it closes the socket with 1007 (bad message) or 1008 (refused:
//! key, model, handle) and a reason for
//!
//! - a connection without `?key=` or with the wrong key, or on another path
//!   (that one is an HTTP 404 at the upgrade);
//! - a first message that is not `setup`, a second `setup`, anything sent
//!   before `setupComplete`;
//! - unknown fields at any level it models, no or several top-level fields;
//! - a model other than the configured one, modalities other than `AUDIO`;
//! - audio whose mimeType is not `audio/pcm;rate=16000` or whose data is
//!   not valid base64;
//! - a resumption handle it did not hand out as resumable;
//! - declared functions with invalid names or both schema forms;
//! - a `toolResponse` that is not `functionResponses` of objects, or that
//!   answers a call it did not make, already answered or cancelled.
//!
//! Each connection runs its own [`Script`] (the n-th connection the n-th
//! script; later ones an empty script): wait for audio, send messages, hold
//! `setupComplete` until the test releases it, close with a code, or drop
//! the TCP connection. Everything received is recorded per connection for
//! the test to assert on, and [`FakeLive::wait_for`] waits for a condition
//! on those records without sleeping.

//!
//! Layout: this file runs the server and the scripts and keeps the records;
//! `strict` holds the validation, [`msg`] the server messages scripts send.

mod strict;

pub mod msg;

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::{
    net::{TcpListener, TcpStream},
    sync::{watch, Notify},
    task::JoinHandle,
};
use tokio_tungstenite::{
    accept_hdr_async,
    tungstenite::{
        handshake::server::{ErrorResponse, Request, Response},
        http::StatusCode,
        protocol::{frame::coding::CloseCode, CloseFrame},
        Message,
    },
    WebSocketStream,
};

use strict::{accept, check_setup, next_client_message, ClientMessage, Incoming};

/// The path the real endpoint serves.
pub const LIVE_PATH: &str =
    "/ws/google.ai.generativelanguage.v1beta.GenerativeService.BidiGenerateContent";

/// Safety net for waits in tests: a hang becomes a failure, not a stuck run.
/// Not a timing assertion; nothing in a passing run comes near it.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// What the fake accepts.
pub struct FakeConfig {
    pub api_key: String,
    /// The model as setup must name it, e.g. `models/gemini-live-test`.
    pub model: String,
    /// Scripts by connection index.
    pub scripts: Vec<Script>,
}

/// What one connection does after `setup` was accepted.
#[derive(Default)]
pub struct Script {
    /// Hold `setupComplete` until this is notified (a "gap" the test controls).
    pub hold_setup_complete: Option<Arc<Notify>>,
    pub steps: Vec<Step>,
}

impl Script {
    pub fn new(steps: Vec<Step>) -> Self {
        Self {
            hold_setup_complete: None,
            steps,
        }
    }
}

/// One scripted action, run in order.
pub enum Step {
    /// Wait until this connection has received at least this many audio bytes.
    AwaitAudioBytes(usize),
    /// Wait until the client sent `audioStreamEnd`.
    AwaitAudioStreamEnd,
    /// Wait until the test notifies.
    AwaitRelease(Arc<Notify>),
    /// Send this server message. A `toolCall` opens its calls (a
    /// `toolResponse` must answer them), a `toolCallCancellation` closes
    /// them (answering one then is refused).
    Send(Value),
    /// Wait until this connection has received this many function responses.
    AwaitToolResponses(usize),
    /// Send a close frame, then wait for the client's reply.
    Close(u16, String),
    /// Drop the TCP connection without a close frame.
    Drop,
}

/// Everything one connection received, and how it ended.
#[derive(Debug, Clone, Default)]
pub struct Connection {
    /// The `key` query parameter, if any.
    pub key: Option<String>,
    /// The `setup` object as received (raw JSON), once accepted.
    pub setup: Option<Value>,
    pub setup_complete_sent: bool,
    /// Decoded audio, concatenated in arrival order.
    pub audio: Vec<u8>,
    pub audio_chunks: usize,
    pub audio_stream_end: bool,
    /// Every client message, raw, in order (audio data included).
    pub messages: Vec<Value>,
    /// Function calls sent and neither answered nor cancelled: (id, name).
    pub open_calls: Vec<(String, String)>,
    /// Every function response accepted, `{id, name, response}`, in order.
    pub tool_responses: Vec<Value>,
    /// Close code and reason the fake used to reject the client.
    pub rejected: Option<(u16, String)>,
    /// Close code the client sent (1005 for a close without code).
    pub client_close: Option<u16>,
    /// The connection is over.
    pub ended: bool,
}

impl Connection {
    /// `setup.systemInstruction.parts[0].text`.
    pub fn system_instruction(&self) -> Option<String> {
        self.setup.as_ref()?["systemInstruction"]["parts"][0]["text"]
            .as_str()
            .map(str::to_owned)
    }

    /// `setup.sessionResumption.handle`.
    pub fn resume_handle(&self) -> Option<String> {
        self.setup.as_ref()?["sessionResumption"]["handle"]
            .as_str()
            .map(str::to_owned)
    }
}

pub(super) struct Shared {
    config: FakeConfig,
    state: Mutex<State>,
    /// Bumped on every change, so waiters re-check.
    changed: watch::Sender<u64>,
}

#[derive(Default)]
struct State {
    connections: Vec<Connection>,
    /// Handles sent as `resumable: true`.
    issued_handles: Vec<String>,
}

impl Shared {
    fn update<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        let result = {
            let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
            f(&mut state)
        };
        self.changed.send_modify(|version| *version += 1);
        result
    }

    fn with_conn<T>(&self, index: usize, f: impl FnOnce(&mut Connection) -> T) -> T {
        self.update(|state| f(&mut state.connections[index]))
    }

    fn snapshot(&self) -> Vec<Connection> {
        self.state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .connections
            .clone()
    }
}

/// A running fake; stops (and drops its connections) when dropped.
pub struct FakeLive {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl Drop for FakeLive {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeLive {
    /// Bind `127.0.0.1:0` and serve.
    pub async fn start(config: FakeConfig) -> FakeLive {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let shared = Arc::new(Shared {
            config,
            state: Mutex::new(State::default()),
            changed: watch::channel(0).0,
        });
        let task = tokio::spawn(accept_loop(listener, shared.clone()));
        FakeLive { addr, shared, task }
    }

    /// Where the fake listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The endpoint URL (without key), as `LiveConfig::endpoint` wants it.
    pub fn endpoint(&self) -> String {
        format!("ws://{}{LIVE_PATH}", self.addr)
    }

    /// A copy of what every connection so far received.
    pub fn connections(&self) -> Vec<Connection> {
        self.shared.snapshot()
    }

    /// Wait until `condition` holds for the connections (or panic after
    /// [`PATIENCE`], naming `what`).
    pub async fn wait_for(
        &self,
        what: &str,
        condition: impl Fn(&[Connection]) -> bool,
    ) -> Vec<Connection> {
        let mut changes = self.shared.changed.subscribe();
        let wait = async {
            loop {
                let connections = self.shared.snapshot();
                if condition(&connections) {
                    return connections;
                }
                if changes.changed().await.is_err() {
                    panic!("the fake stopped while waiting for {what}");
                }
            }
        };
        match tokio::time::timeout(PATIENCE, wait).await {
            Ok(connections) => connections,
            Err(_) => panic!(
                "timed out waiting for {what}; connections: {:#?}",
                summary(&self.connections())
            ),
        }
    }
}

/// Connect a raw client, send `messages` in order and return the close
/// code and reason the fake answers with.
pub async fn rejection(url: String, messages: Vec<Value>) -> (u16, String) {
    let (mut socket, _) = tokio_tungstenite::connect_async(url)
        .await
        .expect("the upgrade succeeds");
    for message in messages {
        // The fake may already have closed; later sends may fail.
        let _ = socket.send(Message::text(message.to_string())).await;
    }
    let read = async {
        while let Some(Ok(message)) = socket.next().await {
            if let Message::Close(frame) = message {
                return frame.map(|f| (u16::from(f.code), f.reason.to_string()));
            }
        }
        None
    };
    let closed = tokio::time::timeout(PATIENCE, read)
        .await
        .expect("the fake answers");
    closed.expect("the fake closes with a code")
}

/// Connections without the bulky raw messages, for panic messages.
fn summary(connections: &[Connection]) -> Vec<String> {
    connections
        .iter()
        .map(|c| {
            format!(
                "setup={} complete={} audio={}B end={} rejected={:?} client_close={:?} ended={}",
                c.setup.is_some(),
                c.setup_complete_sent,
                c.audio.len(),
                c.audio_stream_end,
                c.rejected,
                c.client_close,
                c.ended
            )
        })
        .collect()
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    // Connection tasks live in this set: aborting the accept loop drops it,
    // which aborts them all.
    let mut connections = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((tcp, _)) = accepted else { continue };
                let index = shared.update(|state| {
                    state.connections.push(Connection::default());
                    state.connections.len() - 1
                });
                connections.spawn(serve(tcp, shared.clone(), index));
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

pub(super) type Socket = WebSocketStream<TcpStream>;

/// A protocol violation: close code and reason.
pub(super) type Violation = (u16, String);

// The handshake callback's error type is tungstenite's (an HTTP response).
#[allow(clippy::result_large_err)]
async fn serve(tcp: TcpStream, shared: Arc<Shared>, index: usize) {
    let mut key = None;
    let handshake = accept_hdr_async(tcp, |request: &Request, response: Response| {
        if request.uri().path() != LIVE_PATH {
            let mut not_found = ErrorResponse::new(Some("Not Found".into()));
            *not_found.status_mut() = StatusCode::NOT_FOUND;
            return Err(not_found);
        }
        key = request.uri().query().and_then(|query| {
            query
                .split('&')
                .find_map(|pair| pair.strip_prefix("key="))
                .map(str::to_owned)
        });
        Ok(response)
    })
    .await;
    let Ok(mut socket) = handshake else {
        shared.with_conn(index, |c| c.ended = true);
        return;
    };
    shared.with_conn(index, |c| c.key = key.clone());

    let outcome = run_connection(&mut socket, &shared, index, key).await;
    match outcome {
        Ok(Ending::Dropped) => {
            // Drop the TCP stream without a close frame.
            drop(socket);
        }
        Ok(Ending::Done) => {}
        Err((code, reason)) => {
            shared.with_conn(index, |c| c.rejected = Some((code, reason.clone())));
            let _ = socket.send(close_message(code, &reason)).await;
            drain_until_closed(&mut socket, &shared, index).await;
        }
    }
    shared.with_conn(index, |c| c.ended = true);
}

enum Ending {
    /// The exchange ended by a close (either side).
    Done,
    /// The script asked to drop the connection.
    Dropped,
}

async fn run_connection(
    socket: &mut Socket,
    shared: &Shared,
    index: usize,
    key: Option<String>,
) -> Result<Ending, Violation> {
    match key.as_deref() {
        None | Some("") => {
            return Err((
                1008,
                "Method doesn't allow unregistered callers. Please use API Key.".into(),
            ))
        }
        Some(key) if key != shared.config.api_key => {
            return Err((
                1008,
                "API key not valid. Please pass a valid API key.".into(),
            ))
        }
        Some(_) => {}
    }

    // The first message must be a valid setup.
    let setup = match next_client_message(socket, shared, index).await? {
        Incoming::Message(ClientMessage::Setup(setup)) => setup,
        Incoming::Message(_) => {
            return Err((
                1007,
                "Request contains an invalid argument: the first message must be setup.".into(),
            ))
        }
        Incoming::Closed => return Ok(Ending::Done),
    };
    check_setup(&setup, shared)?;
    shared.with_conn(index, |c| c.setup = Some(setup.clone()));

    let script = take_script(shared, index);

    // Anything the client sends before setupComplete is a violation.
    if let Some(gate) = &script.hold_setup_complete {
        tokio::select! {
            () = gate.notified() => {}
            incoming = next_client_message(socket, shared, index) => {
                return match incoming? {
                    Incoming::Closed => Ok(Ending::Done),
                    Incoming::Message(_) => Err((1007, "Request contains an invalid argument: message sent before setupComplete.".into())),
                };
            }
        }
    }
    send(socket, json!({"setupComplete": {}})).await;
    shared.with_conn(index, |c| c.setup_complete_sent = true);

    let mut steps = script.steps.into_iter();
    let mut current = steps.next();
    loop {
        // Run every step that is ready now.
        while let Some(step) = current.take() {
            let ready = match &step {
                Step::AwaitAudioBytes(bytes) => {
                    shared.with_conn(index, |c| c.audio.len() >= *bytes)
                }
                Step::AwaitAudioStreamEnd => shared.with_conn(index, |c| c.audio_stream_end),
                Step::AwaitToolResponses(count) => {
                    shared.with_conn(index, |c| c.tool_responses.len() >= *count)
                }
                Step::AwaitRelease(gate) => {
                    // Keep reading (and checking) the client while waiting.
                    loop {
                        let incoming = tokio::select! {
                            () = gate.notified() => break,
                            incoming = next_client_message(socket, shared, index) => incoming,
                        };
                        match incoming? {
                            Incoming::Closed => return Ok(Ending::Done),
                            Incoming::Message(message) => accept(message, shared, index)?,
                        }
                    }
                    true
                }
                Step::Send(message) => {
                    remember_handle(message, shared);
                    track_calls(message, shared, index);
                    send(socket, message.clone()).await;
                    true
                }
                Step::Close(code, reason) => {
                    let _ = socket.send(close_message(*code, reason)).await;
                    drain_until_closed(socket, shared, index).await;
                    return Ok(Ending::Done);
                }
                Step::Drop => return Ok(Ending::Dropped),
            };
            if ready {
                current = steps.next();
            } else {
                current = Some(step);
                break;
            }
        }
        match next_client_message(socket, shared, index).await? {
            Incoming::Closed => return Ok(Ending::Done),
            Incoming::Message(message) => accept(message, shared, index)?,
        }
    }
}

/// This connection's script (taken once).
fn take_script(shared: &Shared, index: usize) -> Script {
    let scripts = &shared.config.scripts;
    match scripts.get(index) {
        Some(script) => Script {
            hold_setup_complete: script.hold_setup_complete.clone(),
            steps: script.steps.iter().map(clone_step).collect(),
        },
        None => Script::default(),
    }
}

fn clone_step(step: &Step) -> Step {
    match step {
        Step::AwaitAudioBytes(n) => Step::AwaitAudioBytes(*n),
        Step::AwaitAudioStreamEnd => Step::AwaitAudioStreamEnd,
        Step::AwaitToolResponses(n) => Step::AwaitToolResponses(*n),
        Step::AwaitRelease(gate) => Step::AwaitRelease(gate.clone()),
        Step::Send(value) => Step::Send(value.clone()),
        Step::Close(code, reason) => Step::Close(*code, reason.clone()),
        Step::Drop => Step::Drop,
    }
}

/// Note handles the script hands out as resumable; only those resume.
fn remember_handle(message: &Value, shared: &Shared) {
    let update = &message["sessionResumptionUpdate"];
    if update["resumable"] == json!(true) {
        if let Some(handle) = update["newHandle"].as_str() {
            shared.update(|state| state.issued_handles.push(handle.to_owned()));
        }
    }
}
/// Open the calls of a `toolCall`, close those of a `toolCallCancellation`.
fn track_calls(message: &Value, shared: &Shared, index: usize) {
    let calls = message["toolCall"]["functionCalls"].as_array().cloned();
    let cancelled = message["toolCallCancellation"]["ids"].as_array().cloned();
    shared.with_conn(index, |c| {
        for call in calls.iter().flatten() {
            if let (Some(id), Some(name)) = (call["id"].as_str(), call["name"].as_str()) {
                c.open_calls.push((id.to_owned(), name.to_owned()));
            }
        }
        for id in cancelled.iter().flatten() {
            c.open_calls
                .retain(|(open, _)| Some(open.as_str()) != id.as_str());
        }
    });
}

/// Keep reading until the peer's side is closed too (completes the close
/// handshake), within [`PATIENCE`].
pub(super) async fn drain_until_closed(socket: &mut Socket, shared: &Shared, index: usize) {
    let drain = async {
        while let Some(Ok(message)) = socket.next().await {
            if let Message::Close(frame) = message {
                let code = frame.map_or(1005, |f| u16::from(f.code));
                shared.with_conn(index, |c| {
                    c.client_close.get_or_insert(code);
                });
            }
        }
    };
    let _ = tokio::time::timeout(PATIENCE, drain).await;
}

/// Send a server message the way the service does: JSON in a binary frame.
async fn send(socket: &mut Socket, message: Value) {
    let _ = socket
        .send(Message::binary(message.to_string().into_bytes()))
        .await;
}

fn close_message(code: u16, reason: &str) -> Message {
    // A close reason is limited to 123 bytes; cut at a character boundary.
    let mut end = reason.len().min(123);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    Message::Close(Some(CloseFrame {
        code: CloseCode::from(code),
        reason: reason[..end].to_owned().into(),
    }))
}
