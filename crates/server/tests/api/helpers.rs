//! `spawn_app()`: the real server on an ephemeral port with a fresh database
//! and a fake OpenAI-compatible upstream, plus small HTTP and socket clients.

use std::{net::SocketAddr, time::Duration};

use colloquy::{config::Config, store::ScratchDatabase, App, AppState};
use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tempfile::TempDir;
use tokio::{net::TcpStream, sync::oneshot, task::JoinHandle};
use tokio_tungstenite::{
    tungstenite::{self, protocol::frame::coding::CloseCode, Message},
    MaybeTlsStream, WebSocketStream,
};

use crate::fake_openai::FakeOpenAi;

/// How long a test waits for any one event before failing.
pub const EVENT_WAIT: Duration = Duration::from_secs(10);

/// A running server and everything needed to talk to it.
pub struct TestApp {
    pub addr: SocketAddr,
    pub http: reqwest::Client,
    pub upstream: FakeOpenAi,
    pub state: AppState,
    /// Held for the server's lifetime; `None` inside [`TestApp::restart`]
    /// and for a cluster's node (the cluster holds them).
    data: Option<TestData>,
    config: Config,
    stop: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<anyhow::Result<()>>>,
}

/// A server's data dir and a fresh database of the backend under test
/// (`COLLOQUY_TEST_DATABASE`: SQLite by default, or PostgreSQL).
pub struct TestData {
    pub dir: TempDir,
    pub database: ScratchDatabase,
}

pub async fn test_data() -> TestData {
    let dir = tempfile::tempdir().unwrap();
    let database = ScratchDatabase::from_env(dir.path())
        .await
        .expect("a scratch database (is PostgreSQL running?)");
    TestData { dir, database }
}

/// Whether the tests run against PostgreSQL (else SQLite).
pub fn on_postgres() -> bool {
    matches!(
        ScratchDatabase::backend_from_env(),
        Ok(colloquy::store::Backend::Postgres)
    )
}

/// A test config: ephemeral port, given data dir and database, the fake
/// upstream as model.
pub fn test_config(data: &TestData, upstream: &FakeOpenAi) -> Config {
    Config {
        addr: "127.0.0.1:0".parse().unwrap(),
        data_dir: data.dir.path().to_path_buf(),
        database_url: Some(data.database.url.clone()),
        model: Some("openai:fake-model".into()),
        openai_base_url: Some(upstream.base_url()),
        provider_idle_timeout_secs: 2,
        shutdown_grace_secs: 5,
        jwt_secret: Some(crate::process_server::TEST_JWT_SECRET.into()),
        // Loading Whisper and Piper takes seconds: only voice tests opt in.
        voice: Some("none".into()),
        // A title request would take the next scripted reply: only the
        // title tests opt in.
        auto_titles: false,
        // A rolling summary request would too: only the summary tests opt in.
        summaries: colloquy::config::SummariesConfig {
            rolling: false,
            ..Default::default()
        },
        ..Config::default()
    }
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// Start the server with the test config, adjusted by `tweak`.
pub async fn spawn_app_with(tweak: impl FnOnce(&mut Config)) -> TestApp {
    let upstream = FakeOpenAi::start().await;
    let data = test_data().await;
    let mut config = test_config(&data, &upstream);
    tweak(&mut config);
    start(config, upstream, Some(data)).await
}

/// Start a server whose data dir and database the caller keeps (one node of a cluster).
pub async fn start_node(config: Config, upstream: FakeOpenAi) -> TestApp {
    start(config, upstream, None).await
}

async fn start(config: Config, upstream: FakeOpenAi, data: Option<TestData>) -> TestApp {
    let app = App::build(config.clone()).await.expect("server builds");
    let addr = app.local_addr().unwrap();
    let state = app.state().clone();
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until_stopped(async {
        let _ = stopped.await;
    }));
    TestApp {
        addr,
        http: reqwest::Client::new(),
        upstream,
        state,
        data,
        config,
        stop: Some(stop),
        server: Some(server),
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn ws_url(&self, path: &str) -> String {
        format!("ws://{}{path}", self.addr)
    }

    /// Shut the server down gracefully and wait for it.
    pub async fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(server) = self.server.take() {
            server.await.unwrap().expect("clean shutdown");
        }
    }

    /// Stop, then start a new server on the same data dir and database.
    pub async fn restart(mut self) -> TestApp {
        self.stop().await;
        let mut config = self.config.clone();
        config.addr = "127.0.0.1:0".parse().unwrap();
        let data = self.data.take();
        start(config, self.upstream.clone(), data).await
    }

    /// Register a fresh user; returns its access token.
    pub async fn register(&self, email: &str) -> String {
        let response = self
            .http
            .post(self.url("/auth/register"))
            .json(&json!({ "email": email, "password": "correct horse battery" }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201, "register {email}");
        let body: Value = response.json().await.unwrap();
        body["access_token"].as_str().unwrap().to_owned()
    }

    /// A new anonymous (guest) user; returns its access token.
    pub async fn guest(&self) -> String {
        let response = self
            .http
            .post(self.url("/api/auth/anonymous"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201, "guest session");
        let body: Value = response.json().await.unwrap();
        body["access_token"].as_str().unwrap().to_owned()
    }

    pub async fn get(&self, path: &str, token: &str) -> reqwest::Response {
        self.http
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
    }

    /// `GET /api/config` (public) as JSON.
    pub async fn client_config(&self) -> Value {
        let response = self.http.get(self.url("/api/config")).send().await.unwrap();
        assert_eq!(response.status(), 200, "/api/config");
        response.json().await.unwrap()
    }

    /// `GET /api/conversations/{id}` as JSON (the conversation with its messages).
    /// The user's listed conversations (the first page).
    pub async fn conversations(&self, token: &str) -> Vec<Value> {
        let response = self.get("/api/conversations", token).await;
        assert_eq!(response.status(), 200, "conversation list");
        let mut list: Value = response.json().await.unwrap();
        match list["conversations"].take() {
            Value::Array(conversations) => conversations,
            other => panic!("no conversation list: {other}"),
        }
    }

    pub async fn conversation(&self, id: impl std::fmt::Display, token: &str) -> Value {
        let response = self.get(&format!("/api/conversations/{id}"), token).await;
        assert_eq!(response.status(), 200, "conversation {id}");
        response.json().await.unwrap()
    }

    pub async fn post_json(&self, path: &str, token: &str, body: Value) -> reqwest::Response {
        self.http
            .post(self.url(path))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    /// Create a plan with `steps` (titles) for the token's user; returns the
    /// plan with its steps as JSON.
    pub async fn plan(&self, token: &str, title: &str, steps: &[&str]) -> Value {
        let steps: Vec<Value> = steps
            .iter()
            .map(|step| json!({ "title": step, "description": format!("About {step}"), "icon": "⭐" }))
            .collect();
        let response = self
            .post_json(
                "/api/plans",
                token,
                json!({ "title": title, "description": format!("Plan: {title}"), "steps": steps }),
            )
            .await;
        assert_eq!(response.status(), 201, "create plan");
        response.json().await.unwrap()
    }

    /// Open `/api/v1/chat/ws` with the token in the query; returns the socket and its `ready`.
    pub async fn chat(&self, token: &str, conversation: Option<&str>) -> (Socket, Value) {
        let mut path = format!("/api/v1/chat/ws?token={token}");
        if let Some(id) = conversation {
            path.push_str(&format!("&conversationId={id}"));
        }
        let mut socket = Socket::connect(&self.ws_url(&path)).await;
        let ready = socket.next_event().await;
        assert_eq!(ready["type"], "ready", "first event is ready: {ready}");
        (socket, ready)
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(server) = self.server.take() {
            server.abort();
        }
    }
}

/// A client socket that reads JSON events.
pub struct Socket {
    inner: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

/// How a socket ended, as seen by the client.
#[derive(Debug)]
pub struct Closed {
    pub code: Option<u16>,
    pub reason: String,
}

impl Socket {
    pub async fn connect(url: &str) -> Self {
        let (inner, _) = tokio_tungstenite::connect_async(url)
            .await
            .expect("handshake");
        Self { inner }
    }

    pub async fn connect_request(request: tungstenite::handshake::client::Request) -> Self {
        let (inner, _) = tokio_tungstenite::connect_async(request)
            .await
            .expect("handshake");
        Self { inner }
    }

    pub async fn send_json(&mut self, value: Value) {
        self.inner
            .send(Message::Text(value.to_string().into()))
            .await
            .unwrap();
    }

    pub async fn send_raw(&mut self, message: Message) {
        self.inner.send(message).await.unwrap();
    }

    /// The next JSON event (skipping control frames); panics on close or time-out.
    pub async fn next_event(&mut self) -> Value {
        loop {
            let frame = tokio::time::timeout(EVENT_WAIT, self.inner.next())
                .await
                .expect("an event in time")
                .expect("socket open")
                .expect("valid frame");
            match frame {
                Message::Text(text) => return serde_json::from_str(&text).unwrap(),
                Message::Close(frame) => panic!("socket closed unexpectedly: {frame:?}"),
                _ => continue,
            }
        }
    }

    /// Events up to and including the final `message` for `reply_id`.
    pub async fn reply_events(&mut self, reply_id: &str) -> Vec<Value> {
        let mut events = Vec::new();
        loop {
            let event = self.next_event().await;
            let done = event["type"] == "message" && event["message_id"] == reply_id;
            events.push(event);
            if done {
                return events;
            }
        }
    }

    /// Wait for the server to close the socket; returns the close frame.
    pub async fn closed(&mut self) -> Closed {
        loop {
            let frame = tokio::time::timeout(EVENT_WAIT, self.inner.next())
                .await
                .expect("close in time");
            match frame {
                Some(Ok(Message::Close(frame))) => {
                    return Closed {
                        code: frame.as_ref().map(|f| u16::from(f.code)),
                        reason: frame.map(|f| f.reason.to_string()).unwrap_or_default(),
                    }
                }
                Some(Ok(_)) => continue,
                None | Some(Err(_)) => {
                    return Closed {
                        code: None,
                        reason: String::new(),
                    }
                }
            }
        }
    }
}

/// Send a `text` event and return its `ack`.
pub async fn send_text(socket: &mut Socket, content: &str, client_id: Option<&str>) -> Value {
    let mut event = json!({ "type": "text", "content": content });
    if let Some(id) = client_id {
        event["client_id"] = json!(id);
    }
    socket.send_json(event).await;
    loop {
        let event = socket.next_event().await;
        if event["type"] == "ack" {
            return event;
        }
        assert_ne!(event["type"], "error", "unexpected error: {event}");
    }
}

/// Concatenate the `delta` contents of `events`.
pub fn concat_deltas(events: &[Value]) -> String {
    events
        .iter()
        .filter(|e| e["type"] == "delta")
        .map(|e| e["content"].as_str().unwrap())
        .collect()
}

#[allow(dead_code)]
pub fn close_code(code: CloseCode) -> u16 {
    u16::from(code)
}

impl Socket {
    /// The next JSON event, or how the socket closed.
    /// The next `error` event, skipping any other.
    pub async fn next_error(&mut self) -> Value {
        loop {
            let event = self.next_event().await;
            if event["type"] == "error" {
                return event;
            }
        }
    }

    pub async fn next_event_or_close(&mut self) -> Result<Value, Closed> {
        loop {
            match self.inner.next().await {
                Some(Ok(Message::Text(text))) => return Ok(serde_json::from_str(&text).unwrap()),
                Some(Ok(Message::Close(frame))) => {
                    return Err(Closed {
                        code: frame.as_ref().map(|f| u16::from(f.code)),
                        reason: frame.map(|f| f.reason.to_string()).unwrap_or_default(),
                    })
                }
                Some(Ok(_)) => continue,
                None | Some(Err(_)) => {
                    return Err(Closed {
                        code: None,
                        reason: String::new(),
                    })
                }
            }
        }
    }
}

/// The JSON events of a whole Server-Sent Events response, and its raw body.
pub async fn sse_events(response: reqwest::Response) -> (Vec<Value>, String) {
    let mut body = String::new();
    let mut stream = response.bytes_stream();
    while let Some(chunk) = stream.next().await {
        body.push_str(std::str::from_utf8(&chunk.unwrap()).unwrap());
    }
    let events = body
        .lines()
        .filter_map(|line| line.strip_prefix("data: "))
        .map(|data| serde_json::from_str(data).unwrap())
        .collect();
    (events, body)
}

/// The `seq` of an event that must have one.
pub fn seq(event: &Value) -> u64 {
    event["seq"]
        .as_u64()
        .unwrap_or_else(|| panic!("no seq in {event}"))
}

/// A reply of `count` words, one every `delay_ms`.
pub fn slow_script(count: usize, delay_ms: u64) -> crate::fake_openai::Script {
    let tokens: Vec<String> = (0..count).map(|i| format!(" w{i}")).collect();
    let refs: Vec<&str> = tokens.iter().map(String::as_str).collect();
    crate::fake_openai::Script::slow(&refs, Duration::from_millis(delay_ms))
}
