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
        ws::{rejection::WebSocketUpgradeRejection, Message, WebSocket, WebSocketUpgrade},
        State,
    },
    http::{HeaderMap, Uri},
    response::{IntoResponse, Response},
};
use futures::{SinkExt, StreamExt};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::{
    context::SessionContext,
    pipeline::{self, PipelineDeps, PipelineSettings, VoiceInput, VoiceOutput},
    reader::AudioReader,
    VoiceBackend, VoiceEngines,
};
use tokio::sync::OwnedSemaphorePermit;

use crate::{
    auth::{authenticate, AuthFailure},
    billing::QuotaError,
    error::{ApiPath, AppError},
    hub::{ChannelHandle, Unstored},
    limits::{SocketPermit, SocketRefused},
    socket::{
        self, close_code, close_code::INTERNAL_ERROR, close_with, prepare_upgrade, Exit, Liveness,
    },
    store::{self, User},
    AppState,
};

const CONFIG_ERROR: &str = "Server configuration error for AI client";
/// The close reason of a session whose plan's daily quota is spent.
const QUOTA_EXCEEDED: &str = "Quota exceeded";

/// The voice socket, upgraded from `GET` (see [`crate::ws::router`]).
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(voice_stream))
}

/// The voice socket of a plan's step: speak with the coach.
///
/// Binary frames only: 16 kHz PCM16 mono in, 24 kHz PCM16 mono out. A
/// request that is no WebSocket handshake gets 400 `websocket_required`, a
/// disallowed `Origin` 403. Refusals after the upgrade are close codes with
/// a reason: 1008 `Not authenticated`, `User not found`, `Step not found` or
/// `Impact not found` (and too many sockets), `Quota exceeded` when the
/// plan's daily quota is spent (at the start or at a later turn) or
/// `Model not in plan`; 1011 `Server configuration
/// error for AI client` when no voice engine or model is configured, or
/// `Session unavailable` when storage failed (retry); 1013 when voice or the
/// server is full (retry later); 1001 without heartbeat.
#[utoipa::path(
    get, path = "/voice/stream/{step_id}", tag = "sockets",
    params(("step_id" = Uuid, Path, description = "The step (of one of the caller's plans) to talk about.")),
    security(("bearer" = [])),
    responses(
        (status = 101, description = "Switching to the WebSocket protocol."),
        (status = 400, description = "`websocket_required`."),
        (status = 403, description = "`origin_not_allowed`."),
    ),
)]
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
    socket::serve(state, upgrade, admitted, run)
}

/// A voice session allowed to start.
struct Admitted {
    user: User,
    engine: Engine,
    context: SessionContext,
    step_id: Uuid,
    step_title: String,
    _permit: SocketPermit,
    /// Holds this session's place under `max_voice_sessions`.
    _voice_session: OwnedSemaphorePermit,
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
    // A spent quota refuses the session up front: Gemini Live answers
    // without asking this server first, so its turns cannot be refused later.
    let model = match &engine {
        Engine::Local(_) => state.turns.default_model_id(),
        Engine::GeminiLive(_) => super::gemini::USAGE_MODEL.to_owned(),
    };
    match state.billing.check(user.id, &model, true).await {
        Ok(_) => {}
        Err(QuotaError::Exceeded(_)) => return Err(policy(QUOTA_EXCEEDED)),
        Err(QuotaError::ModelNotInPlan { .. }) => return Err(policy("Model not in plan")),
        Err(QuotaError::Store(error)) => return Err(storage(error)),
    }
    let permit = state
        .limits
        .open_socket(user.id)
        .map_err(SocketRefused::close)?;
    if let Some(cluster) = &state.cluster {
        cluster
            .sockets
            .admit(user.id)
            .await
            .map_err(SocketRefused::close)?;
    }
    let voice_session = state.voice.open_session().ok_or((
        close_code::TRY_AGAIN_LATER,
        "Voice is busy; try again later",
    ))?;
    let context = SessionContext::load(&state.db, user.id, &plan, &step)
        .await
        .map_err(storage)?;
    Ok(Admitted {
        user,
        engine,
        context,
        step_id: step.id,
        step_title: step.title,
        _permit: permit,
        _voice_session: voice_session,
    })
}

/// The channel of the step's latest voice conversation, so the coach
/// remembers earlier calls (the history budget keeps the prompt bounded);
/// on the first call, of a new one tied to the step, stored with the first
/// thing said (a call with no speech leaves nothing behind).
async fn step_conversation(
    state: &AppState,
    admitted: &Admitted,
) -> Result<ChannelHandle, store::StoreError> {
    let user_id = admitted.user.id;
    if let Some(existing) =
        store::latest_step_conversation(&state.db, user_id, admitted.step_id).await?
    {
        return Ok(state
            .hub
            .channel(existing.id, existing.user_id, existing.last_seq));
    }
    let unstored = Unstored {
        title: format!("Voice: {}", admitted.step_title),
        step_id: Some(admitted.step_id),
    };
    // A fresh id no one else can hold.
    state
        .hub
        .claim(Uuid::now_v7(), user_id, unstored)
        .ok_or(store::StoreError::Conflict(
            "conversation id already in use",
        ))
}

/// The engine serving an admitted session.
enum Engine {
    Local(VoiceEngines),
    GeminiLive(Arc<colloquy_ai::LiveConfig>),
}

#[tracing::instrument(skip_all, fields(user_id = %admitted.user.id))]
async fn run(socket: WebSocket, state: AppState, admitted: Admitted) {
    let channel = match step_conversation(&state, &admitted).await {
        Ok(channel) => channel,
        Err(error) => {
            tracing::error!(%error, "opening the voice conversation failed");
            return close_with(socket, INTERNAL_ERROR, "Session unavailable").await;
        }
    };
    let conversation_id = channel.id;
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
    let mut reader = AudioReader::new(&config.audio);
    let mut liveness = Liveness::new(&state);
    tracing::debug!(%conversation_id, "voice session open");
    let exit = loop {
        tokio::select! {
            wake = liveness.next(&mut stream) => match reader.on_wake(wake, &mut sink).await {
                Err(exit) => break exit,
                Ok(None) => {}
                Ok(Some(audio)) => {
                    if link.input.send(VoiceInput::Audio(audio.samples)).await.is_err() {
                        break Exit::close(INTERNAL_ERROR, "voice pipeline stopped");
                    }
                }
            },
            output = link.output.recv() => match output {
                Some(VoiceOutput::Audio { pcm, .. }) => {
                    let sent = tokio::time::timeout(liveness.timeout(), sink.send(Message::Binary(pcm.into()))).await;
                    if !matches!(sent, Ok(Ok(()))) {
                        break Exit::PeerGone;
                    }
                }
                Some(VoiceOutput::Error { code, message }) => {
                    tracing::warn!(code, %message, "voice turn failed");
                }
                Some(VoiceOutput::QuotaExceeded(_)) => break Exit::close(close_code::POLICY, QUOTA_EXCEEDED),
                // Transcripts and interruptions are for JSON sockets; the
                // binary protocol carries audio only.
                Some(_) => {}
                None => break Exit::close(INTERNAL_ERROR, "voice pipeline stopped"),
            },
        }
    };
    if let Some(close) = exit.into_message() {
        let _ = sink.send(close).await;
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
