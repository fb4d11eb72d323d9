//! One chat socket from `ready` to close: client events in, conversation
//! events out, heartbeats both ways.
//!
//! A single loop owns the socket and `select!`s over inbound frames, the
//! conversation's broadcast, the heartbeat tick and shutdown (the first and
//! last two through [`Liveness`]), so there is one place that writes and one
//! way out.

use std::{sync::Arc, time::Duration};

use axum::extract::ws::{Message, WebSocket};
use base64::{engine::general_purpose::STANDARD as BASE64, Engine as _};
use colloquy_protocol::{ClientEvent, ConversationAction, Seq, ServerEvent};
use colloquy_voice::OUTPUT_SAMPLE_RATE;
use futures::SinkExt;
use tokio::sync::broadcast::{
    self,
    error::{RecvError, TryRecvError},
};
use tokio::sync::OwnedSemaphorePermit;
use uuid::Uuid;

use super::{
    audio::{AudioDecoder, InvalidAudio},
    Admitted,
};
use crate::{
    hub::{ChannelHandle, Published, Replay},
    input::{ClientId, UserText},
    limits::{SocketLimits, Verdict},
    socket::{self, close_code, close_message, Exit, Inbound, Liveness, Wake},
    store::{Parent, User},
    turn::{stored_events, SubmitError, TurnOptions},
    voice::{
        pipeline::{self, PipelineDeps, PipelineSettings, VoiceInput, VoiceLink, VoiceOutput},
        AudioBudget,
    },
    AppState,
};

type Events = broadcast::Receiver<Arc<Published>>;

/// Most events written before one flush.
const WRITE_BATCH: usize = 64;

/// What [`Session::forward_ready`] managed.
enum Forwarded {
    Written,
    Gone,
    /// The socket fell this many events behind its conversation.
    Lagged(u64),
}

struct Session {
    state: AppState,
    user: User,
    limits: SocketLimits,
    channel: ChannelHandle,
    socket: WebSocket,
    write_timeout: Duration,
    /// Speak replies on this socket.
    tts: bool,
    /// The voice pipeline, started by the first `audio` event (or at once with TTS on).
    voice: Option<VoiceLink>,
    /// Turns `audio` events into 16 kHz samples.
    decoder: AudioDecoder,
    /// The same audio budget as the voice socket's.
    audio_budget: AudioBudget,
    /// This socket's place under `max_voice_sessions`, once voice started.
    voice_session: Option<OwnedSemaphorePermit>,
}

/// The next output of the voice pipeline, if one runs.
async fn voice_output(voice: &mut Option<VoiceLink>) -> Option<VoiceOutput> {
    match voice.as_mut() {
        Some(link) => link.output.recv().await,
        None => std::future::pending().await,
    }
}

/// Serve one authenticated socket on `conversation` until either side ends
/// it. With `resume_after`, first replay every event after that seq.
#[tracing::instrument(skip_all, fields(conversation_id = %admitted.channel.id, user_id = %admitted.user.id))]
pub(crate) async fn run(socket: WebSocket, state: AppState, admitted: Admitted) {
    let Admitted {
        user,
        channel,
        resume_after,
        tts,
        permit: _permit,
    } = admitted;
    let heartbeat_timeout = Duration::from_secs(state.config.heartbeat_timeout_secs);
    let audio_budget = AudioBudget::new(&state.config.audio);
    let mut session = Session {
        limits: state.limits.for_socket(),
        state,
        user,
        channel,
        socket,
        write_timeout: heartbeat_timeout,
        tts,
        voice: None,
        decoder: AudioDecoder::default(),
        audio_budget,
        voice_session: None,
    };
    let mut user_events = session.state.hub.subscribe_user(session.user.id);
    tracing::debug!("socket open");
    // The futures of the rarer steps (a client message, not an event to
    // forward) are boxed: inlined, the largest of them would set the size
    // of every socket's task, idle or not.
    let Some(mut events) = Box::pin(session.subscribe(resume_after, true)).await else {
        return;
    };
    if tts && !Box::pin(session.start_voice()).await {
        return;
    }
    let mut liveness = Liveness::new(&session.state);

    let exit = loop {
        tokio::select! {
            wake = liveness.next(&mut session.socket) => match wake {
                Wake::Exit(exit) => break exit,
                Wake::Ping => {
                    if !session.send(Message::Ping(Default::default())).await {
                        break Exit::PeerGone;
                    }
                }
                Wake::Frame(frame) => {
                    if !matches!(frame, Some(Ok(Message::Pong(_)))) {
                        match session.limits.frame() {
                            Verdict::Allowed => {}
                            Verdict::Limited => continue,
                            Verdict::Abusive => break Exit::close(close_code::POLICY, "rate limit exceeded"),
                        }
                    }
                    match socket::inbound(frame) {
                        Err(exit) => break exit,
                        Ok(Inbound::Text(text)) => {
                            if !Box::pin(session.handle_text(text.as_str(), &mut events)).await {
                                break Exit::PeerGone;
                            }
                        }
                        Ok(Inbound::Binary(_)) => {
                            let ok = Box::pin(session.send_error("unsupported_frame", "binary frames are not accepted on the chat socket")).await;
                            if !ok { break Exit::PeerGone; }
                        }
                        Ok(Inbound::Control) => {}
                    }
                }
            },
            received = events.recv() => match received {
                Ok(published) => match session.forward_ready(&published, &mut events).await {
                    Forwarded::Written => {}
                    Forwarded::Gone => break Exit::PeerGone,
                    Forwarded::Lagged(missed) => break Box::pin(session.fell_behind(missed)).await,
                },
                Err(RecvError::Lagged(missed)) => break Box::pin(session.fell_behind(missed)).await,
                Err(RecvError::Closed) => break Exit::close(close_code::GOING_AWAY, "conversation closed"),
            },
            output = voice_output(&mut session.voice) => match output {
                Some(output) => {
                    if !Box::pin(session.send_voice(output)).await {
                        break Exit::PeerGone;
                    }
                }
                None => session.voice = None,
            },
            received = user_events.events.recv() => match received {
                Ok(published) if session.is_own_creation(&published.event) => {}
                Ok(published) => {
                    if !session.forward(&published).await {
                        break Exit::PeerGone;
                    }
                }
                // Conversation-list hints only: a client that missed some reloads its list anyway.
                Err(RecvError::Lagged(_)) => {}
                Err(RecvError::Closed) => break Exit::close(close_code::GOING_AWAY, "user channel closed"),
            },
        }
    };
    if let Some(close) = exit.into_message() {
        let _ = session.send(close).await;
    }
    tracing::debug!("socket closed");
}

impl Session {
    /// Subscribe to the conversation: send `ready` (when `announce`), then
    /// every event after `resume_after` exactly once, and return the live
    /// receiver. `None` when the socket is gone.
    async fn subscribe(&mut self, resume_after: Option<Seq>, announce: bool) -> Option<Events> {
        let conversation_id = self.channel.id;
        let (last_seq, replay, events) = match resume_after {
            None => {
                let (last_seq, events) = self.channel.subscribe().await;
                (last_seq, Replay::Events(Vec::new()), events)
            }
            Some(after) => {
                let db = self.state.db.clone();
                let loaded = self
                    .channel
                    .subscribe_after(after, |after, limit| async move {
                        stored_events(&db, conversation_id, after, limit).await
                    })
                    .await;
                match loaded {
                    Ok(subscription) => (
                        subscription.last_seq,
                        subscription.replay,
                        subscription.events,
                    ),
                    Err(error) => {
                        tracing::error!(%error, "loading events to replay failed");
                        self.send_error(
                            "storage_error",
                            "could not load the conversation; please retry",
                        )
                        .await;
                        return None;
                    }
                }
            }
        };
        if announce {
            let ready = ServerEvent::Ready {
                conversation_id,
                last_seq,
            };
            if !self.send_event(&ready).await {
                return None;
            }
        }
        match replay {
            Replay::Events(replayed) => {
                for published in &replayed {
                    if !self.forward(published).await {
                        return None;
                    }
                }
            }
            Replay::ResyncRequired => {
                let message = "events since last_seq cannot be replayed; reload the conversation";
                if !self.send_error("resync_required", message).await {
                    return None;
                }
            }
        }
        Some(events)
    }

    /// `created` for this socket's own conversation: its first `ack` says
    /// so already, and the other sockets of the user are the ones to tell.
    fn is_own_creation(&self, event: &ServerEvent) -> bool {
        matches!(
            event,
            ServerEvent::Conversation { action: ConversationAction::Created, conversation_id, .. }
                if *conversation_id == self.channel.id
        )
    }

    /// Write one frame; `false` when the socket is gone or stuck past the write time-out.
    async fn send(&mut self, message: Message) -> bool {
        matches!(
            tokio::time::timeout(self.write_timeout, self.socket.send(message)).await,
            Ok(Ok(()))
        )
    }

    async fn send_event(&mut self, event: &ServerEvent) -> bool {
        match serde_json::to_string(event) {
            Ok(json) => self.send(Message::Text(json.into())).await,
            Err(_) => false,
        }
    }

    async fn forward(&mut self, published: &Arc<Published>) -> bool {
        self.send(Message::Text(published.json.clone())).await
    }

    /// The socket missed events: say so (the client resumes from its last
    /// seq) and close with 1013.
    async fn fell_behind(&mut self, missed: u64) -> Exit {
        tracing::warn!(missed, "socket fell behind its conversation");
        let message = "this connection fell behind; reconnect and resume";
        self.send_error("resync_required", message).await;
        Exit::close(close_code::TRY_AGAIN_LATER, "client too slow")
    }

    /// Write `first` and the events already waiting behind it (up to
    /// [`WRITE_BATCH`]) with a single flush: under load one syscall carries
    /// many events instead of one each.
    async fn forward_ready(&mut self, first: &Arc<Published>, events: &mut Events) -> Forwarded {
        let socket = &mut self.socket;
        let write = async {
            socket.feed(Message::Text(first.json.clone())).await?;
            let mut lagged = None;
            for _ in 1..WRITE_BATCH {
                match events.try_recv() {
                    Ok(next) => socket.feed(Message::Text(next.json.clone())).await?,
                    Err(TryRecvError::Lagged(missed)) => {
                        lagged = Some(missed);
                        break;
                    }
                    // Closed is seen again by the next `recv`.
                    Err(TryRecvError::Empty | TryRecvError::Closed) => break,
                }
            }
            socket.flush().await?;
            Ok::<_, axum::Error>(lagged)
        };
        match tokio::time::timeout(self.write_timeout, write).await {
            Ok(Ok(None)) => Forwarded::Written,
            Ok(Ok(Some(missed))) => Forwarded::Lagged(missed),
            Ok(Err(_)) | Err(_) => Forwarded::Gone,
        }
    }

    /// A socket-local error (no `seq`: it is not part of the conversation).
    async fn send_error(&mut self, code: &str, message: &str) -> bool {
        self.refuse(code, message, None).await
    }

    /// An error refusing the `text` event sent with `client_id`, so the
    /// client knows which queued message it concerns.
    async fn refuse(&mut self, code: &str, message: &str, client_id: Option<&str>) -> bool {
        let event = ServerEvent::Error {
            code: code.into(),
            message: message.into(),
            message_id: None,
            seq: None,
            client_id: client_id.map(str::to_owned),
            quota: None,
        };
        self.send_event(&event).await
    }

    /// Act on one client event; `false` when the socket is gone.
    async fn handle_text(&mut self, text: &str, events: &mut Events) -> bool {
        let event = match serde_json::from_str::<ClientEvent>(text) {
            Ok(event) => event,
            Err(error) => {
                let message = format!("unrecognized event: {error}");
                return self.send_error("invalid_event", &message).await;
            }
        };
        match event {
            ClientEvent::Ping => self.send_event(&ServerEvent::Pong).await,
            ClientEvent::Stop => {
                // Speech first: it cuts the reply to what was heard.
                if let Some(link) = &self.voice {
                    let _ = link.input.send(VoiceInput::StopSpeaking).await;
                }
                let stopped = self.state.turns.cancel_replies(self.channel.id);
                tracing::debug!(stopped, "stop requested");
                true
            }
            ClientEvent::Text {
                content,
                client_id,
                model,
                parent_id,
            } => {
                let parent = parent_id.map_or(Parent::ActiveLeaf, Parent::Message);
                self.submit(content, client_id, model, parent).await
            }
            ClientEvent::Regenerate { message_id, model } => {
                self.regenerate(message_id, model).await
            }
            ClientEvent::Audio { data, sample_rate } => self.audio(data, sample_rate).await,
            ClientEvent::AudioEnd => match &self.voice {
                Some(link) => {
                    let _ = link.input.send(VoiceInput::End).await;
                    true
                }
                None => true,
            },
            ClientEvent::Resume { last_seq } => {
                match self.limits.resume() {
                    Verdict::Allowed => {}
                    Verdict::Limited => {
                        return self
                            .send_error("rate_limited", "too many resume requests; slow down")
                            .await;
                    }
                    Verdict::Abusive => {
                        let close = close_message(close_code::POLICY, "rate limit exceeded");
                        let _ = self.send(close).await;
                        return false;
                    }
                }
                self.resume(last_seq, events).await
            }
        }
    }

    /// Resubscribe from `last_seq` (a `resume` request); `false` when the socket is gone.
    async fn resume(&mut self, last_seq: Seq, events: &mut Events) -> bool {
        match self.subscribe(Some(last_seq), false).await {
            Some(resubscribed) => {
                *events = resubscribed;
                true
            }
            None => false,
        }
    }

    /// Start the voice pipeline; `false` when the socket is gone. Without a
    /// voice engine the client gets a `voice_unavailable` error instead.
    async fn start_voice(&mut self) -> bool {
        if self.voice.is_some() {
            return true;
        }
        let Some(engines) = self.state.voice.local() else {
            return self
                .send_error("voice_unavailable", "voice is not enabled on this server")
                .await;
        };
        let Some(voice_session) = self.state.voice.open_session() else {
            return self
                .send_error(
                    "overloaded",
                    "voice is busy on this server; try again later",
                )
                .await;
        };
        self.voice_session = Some(voice_session);
        let config = &self.state.config;
        let settings = PipelineSettings {
            vad: config.audio.vad(),
            playback_lead: Duration::from_millis(config.audio.playback_lead_ms),
            speak: self.tts,
            system_prompt: self.tts.then(|| {
                format!(
                    "{}\n\n{}",
                    config.system_prompt, config.audio.voice_instructions
                )
            }),
            max_message_chars: config.max_message_chars,
            transport: "chat",
        };
        let deps = PipelineDeps {
            db: self.state.db.clone(),
            turns: self.state.turns.clone(),
            engines: engines.clone(),
            metrics: self.state.voice.metrics.clone(),
        };
        self.voice = Some(pipeline::start(deps, self.channel.clone(), settings).await);
        true
    }

    /// One `audio` event: base64 PCM16 at `sample_rate` (16 kHz by default).
    async fn audio(&mut self, data: String, sample_rate: Option<u32>) -> bool {
        let samples = match self.decoder.decode(data, sample_rate).await {
            Ok(samples) => samples,
            Err(InvalidAudio(message)) => {
                return self.send_error("invalid_audio", &message).await;
            }
        };
        if !self.audio_budget.take(samples.len() * 2) {
            self.send_error("rate_limited", "audio faster than real time allows")
                .await;
            let close = close_message(close_code::POLICY, "audio rate limit exceeded");
            let _ = self.send(close).await;
            return false;
        }
        if !self.start_voice().await {
            return false;
        }
        if let Some(link) = &self.voice {
            if link.input.send(VoiceInput::Audio(samples)).await.is_err() {
                self.voice = None;
                return self
                    .send_error(
                        "voice_unavailable",
                        "the voice pipeline stopped; send audio again",
                    )
                    .await;
            }
        }
        true
    }

    /// Send one voice pipeline output as its JSON event.
    async fn send_voice(&mut self, output: VoiceOutput) -> bool {
        let event = match output {
            VoiceOutput::SpeechStarted => ServerEvent::SpeechStarted,
            VoiceOutput::Transcript { text, client_id } => {
                ServerEvent::Transcript { text, client_id }
            }
            VoiceOutput::Audio { reply_id, pcm } => ServerEvent::Audio {
                message_id: reply_id,
                data: BASE64.encode(pcm),
                sample_rate: OUTPUT_SAMPLE_RATE,
            },
            VoiceOutput::Interrupted {
                reply_id,
                played_ms,
                content,
            } => ServerEvent::Interrupted {
                message_id: reply_id,
                played_ms,
                content,
            },
            VoiceOutput::Error { code, message } => return self.send_error(code, &message).await,
            VoiceOutput::QuotaExceeded(quota) => return self.send_event(&quota.event(None)).await,
        };
        self.send_event(&event).await
    }

    /// The socket's message rate: `Some(alive)` when the message is refused.
    async fn refuse_over_rate(&mut self, id: Option<&str>) -> Option<bool> {
        match self.limits.message() {
            Verdict::Allowed => None,
            Verdict::Limited => Some(
                self.refuse("rate_limited", "too many messages; slow down", id)
                    .await,
            ),
            Verdict::Abusive => {
                self.refuse("rate_limited", "too many messages; closing", id)
                    .await;
                let close = close_message(close_code::POLICY, "rate limit exceeded");
                let _ = self.send(close).await;
                Some(false)
            }
        }
    }

    /// A `regenerate` event; `false` when the socket is gone. The new
    /// reply's events reach this socket through the broadcast.
    async fn regenerate(&mut self, reply_id: Uuid, model: Option<String>) -> bool {
        if let Some(alive) = self.refuse_over_rate(None).await {
            return alive;
        }
        let options = match self.state.turns.models().pick(model.as_deref()) {
            Ok(model) => TurnOptions {
                model,
                ..TurnOptions::default()
            },
            Err(invalid) => return self.refuse(invalid.code, &invalid.message, None).await,
        };
        match self
            .state
            .turns
            .regenerate(&self.channel, reply_id, options)
            .await
        {
            Ok(_) => true,
            Err(error) => self.refuse_submit(error, None).await,
        }
    }

    /// Tell the client why a message or regenerate was refused.
    async fn refuse_submit(&mut self, error: SubmitError, id: Option<&str>) -> bool {
        if let SubmitError::QuotaExceeded(quota) = error {
            tracing::info!(plan = %quota.plan, limit = quota.limit, "message over quota");
            return self.send_event(&quota.event(id.map(str::to_owned))).await;
        }
        tracing::warn!(%error, "message refused");
        let message = match error.code() {
            "storage_error" => "the message could not be stored; please retry".to_owned(),
            _ => error.to_string(),
        };
        self.refuse(error.code(), &message, id).await
    }

    async fn submit(
        &mut self,
        content: String,
        client_id: Option<String>,
        model: Option<String>,
        parent: Parent,
    ) -> bool {
        let id = client_id.clone();
        let id = id.as_deref();
        if let Some(alive) = self.refuse_over_rate(id).await {
            return alive;
        }
        let parsed =
            UserText::parse(content, self.state.config.max_message_chars).and_then(|text| {
                let client_id = client_id.map(ClientId::parse).transpose()?;
                Ok((text, client_id))
            });
        let (text, client_id) = match parsed {
            Ok(parsed) => parsed,
            Err(invalid) => return self.refuse(invalid.code, &invalid.message, id).await,
        };
        let options = match self.state.turns.models().pick(model.as_deref()) {
            Ok(model) => TurnOptions {
                model,
                parent,
                ..TurnOptions::default()
            },
            Err(invalid) => return self.refuse(invalid.code, &invalid.message, id).await,
        };
        match self
            .state
            .turns
            .submit_with(&self.channel, text, client_id, options)
            .await
        {
            // A fresh ack reaches this socket through the broadcast, like every other tab.
            Ok(submitted) if !submitted.duplicate => true,
            Ok(submitted) => self.send_event(&submitted.ack).await,
            Err(error) => self.refuse_submit(error, id).await,
        }
    }
}
