//! `GET /api/config`: what a client needs to boot (seed 000): socket URLs,
//! auth modes, models and limits. Public: it holds nothing secret.

use axum::{extract::State, http::HeaderMap, Json};
use serde_json::{json, Value};
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(client_config))
}

/// `ws`/`wss` base for the host the client reached us on.
fn socket_base(headers: &HeaderMap) -> Option<String> {
    let host = headers.get("host")?.to_str().ok()?;
    let secure = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|proto| proto.eq_ignore_ascii_case("https"));
    Some(format!("{}://{host}", if secure { "wss" } else { "ws" }))
}

/// The voices replies are spoken in. The local engine has one, the Piper
/// voice the setup installs; a client shows it rather than offering a choice.
fn voices(state: &AppState) -> Vec<&'static str> {
    #[cfg(feature = "voice-local")]
    if state.voice.local().is_some() {
        return vec![colloquy_voice::tts::PiperPaths::DEFAULT_VOICE];
    }
    let _ = state;
    Vec::new()
}

/// What a client needs to boot.
///
/// An object of sections: `name` and `version`; `websocket` (`chat_url`,
/// `chat_v2_url`, `voice_url` for the host asked, their `paths`, and
/// `token_query_param`); `http` (paths of the HTTP chat endpoints); `auth`
/// (`modes` and the sign-in paths); `models` (`available`: `id`, `name`,
/// `provider`, `model`; and the `default` id); `voice` (`engine`,
/// `available`, sample rates, `tts_default`, `voices`); `billing`
/// (`checkout`: whether checkout is set up; `plans`: the plans for sale,
/// which `POST /api/billing/checkout` takes); `limits`
/// (`max_message_chars`, `max_frame_bytes`, heartbeat seconds).
/// Public: it holds nothing secret.
#[utoipa::path(
    get, path = "/api/config", tag = "server",
    responses((status = 200, description = "The client configuration.", body = Object)),
)]
async fn client_config(State(state): State<AppState>, headers: HeaderMap) -> Json<Value> {
    let config = &state.config;
    let base = socket_base(&headers).unwrap_or_default();
    let choices = state.turns.models().choices();
    // `id` is what a message's `model` names; `name` is for people.
    let models: Vec<Value> = choices
        .iter()
        .map(|choice| {
            let info = choice.provider.info();
            json!({ "id": choice.id, "name": choice.name, "provider": info.provider, "model": info.model })
        })
        .collect();
    Json(json!({
        "name": "Colloquy",
        "version": env!("CARGO_PKG_VERSION"),
        "websocket": {
            "chat_url": format!("{base}/api/v1/chat/ws"),
            "chat_v2_url": format!("{base}/v2/chat/{{session_id}}"),
            "voice_url": format!("{base}/voice/stream/{{step_id}}"),
            "paths": { "chat": "/api/v1/chat/ws", "chat_v2": "/v2/chat/{session_id}", "voice": "/voice/stream/{step_id}" },
            "token_query_param": "token",
        },
        "http": {
            "messages": "/api/messages",
            "chat_fallback": "/v2/chat",
            "conversations": "/api/conversations",
        },
        "auth": {
            "modes": ["password", "anonymous"],
            "register": "/auth/register",
            "login": "/auth/login",
            "anonymous": "/api/auth/anonymous",
            "claim": "/api/auth/claim",
            "header": "Authorization: Bearer <access_token>",
        },
        "models": {
            "available": models,
            "default": choices.first().map(|choice| &choice.id),
        },
        "voice": {
            "engine": state.voice.name(),
            "available": state.voice.local().is_some() && state.turns.provider().is_some(),
            "input_sample_rate": colloquy_voice::INPUT_SAMPLE_RATE,
            "output_sample_rate": colloquy_voice::OUTPUT_SAMPLE_RATE,
            "tts_default": config.audio.tts,
            "voices": voices(&state),
        },
        // The plans a user can buy (`POST /api/billing/checkout` names one),
        // and whether checkout is set up at all.
        "billing": {
            "checkout": state.stripe.is_some()
                && config.billing.success_url.is_some()
                && config.billing.cancel_url.is_some(),
            "plans": config.billing.prices.keys().collect::<Vec<_>>(),
        },
        "limits": {
            "max_message_chars": config.max_message_chars,
            "max_frame_bytes": config.max_frame_bytes,
            "heartbeat_interval_secs": config.heartbeat_interval_secs,
            "heartbeat_timeout_secs": config.heartbeat_timeout_secs,
        },
    }))
}
