//! `GET /voice/stream/{step_id}`: seed 004's voice socket. Binary frames
//! only: 16 kHz PCM16 mono in, 24 kHz PCM16 mono out. Failures are reported
//! the way the seed specifies: the socket is accepted, then closed with 1008
//! and `Not authenticated`, `User not found`, `Step not found` or `Impact not
//! found`, or 1011 `Server configuration error for AI client` when no voice
//! engine (or no model) is configured. Storage failures close with 1011 and
//! a full server with 1013: both are worth retrying.

use std::{sync::Arc, time::Duration};

use axum::{
    extract::{
        ws::{
            rejection::WebSocketUpgradeRejection, CloseFrame, Message, WebSocket, WebSocketUpgrade,
        },
        State,
    },
    http::{HeaderMap, Uri},
    response::{IntoResponse, Response},
    routing::any,
    Router,
};
use colloquy_voice::pcm::Pcm16Decoder;
use futures::{SinkExt, StreamExt};
use tokio::time::{interval_at, Instant, MissedTickBehavior};
use uuid::Uuid;

use super::{
    context::SessionContext,
    pipeline::{self, PipelineDeps, PipelineSettings, VoiceInput, VoiceOutput},
    VoiceBackend, VoiceEngines,
};
use crate::{
    auth::{authenticate, AuthFailure},
    config::AudioConfig,
    conversation,
    error::{ApiPath, AppError},
    limits::{SocketPermit, SocketRefused},
    store::{self, User},
    ws::{close_code, close_with, is_too_big, prepare_upgrade},
    AppState,
};

/// Close code for "the server cannot serve this" (RFC 6455).
pub(super) const INTERNAL_ERROR: u16 = 1011;
const CONFIG_ERROR: &str = "Server configuration error for AI client";
/// 16 kHz mono PCM16.
const INPUT_BYTES_PER_SEC: f64 = 32_000.0;

pub fn router() -> Router<AppState> {
    Router::new().route("/voice/stream/{step_id}", any(voice_stream))
}

async fn voice_stream(
    State(state): State<AppState>,
    headers: HeaderMap,
    uri: Uri,
    step_id: Result<ApiPath<String>, AppError>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let upgrade = match prepare_upgrade(&state, &headers, upgrade) {
        Ok(upgrade) => upgrade,
        Err(refused) => return refused.into_response(),
    };
    let step_id = step_id
        .ok()
        .and_then(|ApiPath(text)| Uuid::parse_str(&text).ok());
    let admitted = admit(&state, &headers, &uri, step_id).await;
    let sockets = state.lifecycle.sockets.clone();
    upgrade.on_upgrade(move |socket| {
        sockets.track_future(async move {
            match admitted {
                Ok(admitted) => run(socket, state, admitted).await,
                Err((code, reason)) => close_with(socket, code, reason).await,
            }
        })
    })
}

/// A voice session allowed to start.
struct Admitted {
    user: User,
    engine: Engine,
    context: SessionContext,
    step_title: String,
    _permit: SocketPermit,
}

/// Seed 004's checks, in its order; the error is the close code and reason.
async fn admit(
    state: &AppState,
    headers: &HeaderMap,
    uri: &Uri,
    step_id: Option<Uuid>,
) -> Result<Admitted, (u16, &'static str)> {
    let policy = |reason| (close_code::POLICY, reason);
    let user = authenticate(state, headers, uri)
        .await
        .map_err(AuthFailure::close)?;
    let storage = |error: store::StoreError| {
        tracing::error!(%error, "loading the voice session failed");
        (INTERNAL_ERROR, "Session unavailable")
    };
    let step_id = step_id.ok_or(policy("Step not found"))?;
    let step = store::find_step(&state.db, step_id)
        .await
        .map_err(storage)?
        .filter(|step| step.user_id == user.id)
        .ok_or(policy("Step not found"))?;
    let plan = store::find_plan(&state.db, step.plan_id)
        .await
        .map_err(storage)?
        .filter(|plan| plan.user_id == user.id)
        .ok_or(policy("Impact not found"))?;
    let engine = match (state.voice.backend(), state.turns.provider()) {
        (VoiceBackend::Local(engines), Some(_)) => Engine::Local(engines.clone()),
        (VoiceBackend::GeminiLive(live), _) => Engine::GeminiLive(live.clone()),
        _ => return Err((INTERNAL_ERROR, CONFIG_ERROR)),
    };
    let permit = state
        .limits
        .open_socket(user.id)
        .map_err(SocketRefused::close)?;
    let context = SessionContext::load(&state.db, user.id, &plan, &step)
        .await
        .map_err(storage)?;
    Ok(Admitted {
        user,
        engine,
        context,
        step_title: step.title,
        _permit: permit,
    })
}

/// The engine serving an admitted session.
enum Engine {
    Local(VoiceEngines),
    GeminiLive(Arc<colloquy_ai::LiveConfig>),
}

/// Token bucket over input bytes: audio faster than real time is allowed in
/// bursts (a client catching up) but not as a flood.
/// Both limits are settings: `audio.input_burst_secs` (audio a client may
/// send ahead of real time, e.g. after a stall) and `audio.max_input_speed`
/// (the long-run rate, as a multiple of real time).
pub(super) struct AudioBudget {
    tokens: f64,
    capacity: f64,
    refill_per_sec: f64,
    last: Instant,
}

impl AudioBudget {
    pub(super) fn new(audio: &AudioConfig) -> Self {
        let capacity = audio.input_burst_secs * INPUT_BYTES_PER_SEC;
        Self {
            tokens: capacity,
            capacity,
            refill_per_sec: audio.max_input_speed * INPUT_BYTES_PER_SEC,
            last: Instant::now(),
        }
    }

    pub(super) fn take(&mut self, bytes: usize) -> bool {
        let now = Instant::now();
        let refill = (now - self.last).as_secs_f64() * self.refill_per_sec;
        self.tokens = (self.tokens + refill).min(self.capacity);
        self.last = now;
        self.tokens -= bytes as f64;
        self.tokens >= 0.0
    }
}

#[tracing::instrument(skip_all, fields(user_id = %admitted.user.id))]
async fn run(socket: WebSocket, state: AppState, admitted: Admitted) {
    let title = format!("Voice: {}", admitted.step_title);
    let conversation =
        match conversation::create(&state, admitted.user.id, Uuid::now_v7(), &title).await {
            Ok(conversation) => conversation,
            Err(error) => {
                tracing::error!(%error, "creating the voice conversation failed");
                return close_with(socket, INTERNAL_ERROR, "Session unavailable").await;
            }
        };
    let channel = state.hub.channel(conversation.id, conversation.last_seq);
    let config = &state.config;
    let instruction = admitted
        .context
        .system_instruction(&config.audio.voice_instructions);
    let engines = match admitted.engine {
        Engine::Local(engines) => engines,
        Engine::GeminiLive(live) => {
            return super::gemini::bridge(socket, state.clone(), channel, live, instruction).await;
        }
    };
    let settings = PipelineSettings {
        vad: config.audio.vad(),
        playback_lead: Duration::from_millis(config.audio.playback_lead_ms),
        speak: true,
        system_prompt: Some(instruction),
        max_message_chars: config.max_message_chars,
        transport: "voice",
    };
    let deps = PipelineDeps {
        db: state.db.clone(),
        turns: state.turns.clone(),
        engines,
        metrics: state.voice.metrics.clone(),
    };
    let mut link = pipeline::start(deps, channel, settings).await;
    let (mut sink, mut stream) = socket.split();
    let heartbeat_interval = Duration::from_secs(config.heartbeat_interval_secs);
    let heartbeat_timeout = Duration::from_secs(config.heartbeat_timeout_secs);
    let mut heartbeat = interval_at(Instant::now() + heartbeat_interval, heartbeat_interval);
    heartbeat.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut last_heard = Instant::now();
    let mut decoder = Pcm16Decoder::default();
    let mut budget = AudioBudget::new(&config.audio);
    let closing = state.lifecycle.close_sockets.clone();
    tracing::debug!(conversation_id = %conversation.id, "voice session open");
    let close: Option<(u16, &str)> = loop {
        tokio::select! {
            () = closing.cancelled() => break Some((close_code::RESTART, "service restart")),
            frame = stream.next() => {
                last_heard = Instant::now();
                match frame {
                    Some(Ok(Message::Binary(bytes))) => {
                        if !budget.take(bytes.len()) {
                            break Some((close_code::POLICY, "audio rate limit exceeded"));
                        }
                        let samples = decoder.push(&bytes);
                        if link.input.send(VoiceInput::Audio(samples)).await.is_err() {
                            break Some((INTERNAL_ERROR, "voice pipeline stopped"));
                        }
                    }
                    // The seed's protocol has no JSON frames; text is ignored, not fatal.
                    Some(Ok(Message::Text(_))) => tracing::debug!("text frame ignored on the voice socket"),
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                    Some(Err(ref error)) if is_too_big(error) => break Some((close_code::TOO_BIG, "message too big")),
                    None | Some(Err(_)) | Some(Ok(Message::Close(_))) => break None,
                }
            }
            output = link.output.recv() => match output {
                Some(VoiceOutput::Audio { pcm, .. }) => {
                    let sent = tokio::time::timeout(heartbeat_timeout, sink.send(Message::Binary(pcm.into()))).await;
                    if !matches!(sent, Ok(Ok(()))) {
                        break None;
                    }
                }
                Some(VoiceOutput::Error { code, message }) => {
                    tracing::warn!(code, %message, "voice turn failed");
                }
                // Transcripts and interruptions are for JSON sockets; the
                // binary protocol carries audio only.
                Some(_) => {}
                None => break Some((INTERNAL_ERROR, "voice pipeline stopped")),
            },
            _ = heartbeat.tick() => {
                if last_heard.elapsed() > heartbeat_timeout {
                    break Some((close_code::GOING_AWAY, "heartbeat timeout"));
                }
                if sink.send(Message::Ping(Default::default())).await.is_err() {
                    break None;
                }
            }
        }
    };
    if let Some((code, reason)) = close {
        let frame = CloseFrame {
            code,
            reason: reason.into(),
        };
        let _ = sink.send(Message::Close(Some(frame))).await;
    }
    // Ending the input lets the pipeline store what was heard and stop.
    let VoiceLinkParts { input, task } = VoiceLinkParts::from(link);
    drop(input);
    let _ = task.await;
    tracing::debug!("voice session closed");
}

struct VoiceLinkParts {
    input: tokio::sync::mpsc::Sender<VoiceInput>,
    task: tokio::task::JoinHandle<()>,
}

impl From<pipeline::VoiceLink> for VoiceLinkParts {
    fn from(link: pipeline::VoiceLink) -> Self {
        Self {
            input: link.input,
            task: link.task,
        }
    }
}
