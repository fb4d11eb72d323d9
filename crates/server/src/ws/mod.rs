//! WebSocket upgrade handlers: authenticate, open the conversation, upgrade,
//! then hand the socket to [`session::run`]. Failures are reported the way
//! seed 004 specifies: the socket is accepted, then closed with 1008 and a
//! reason, so browsers (which cannot read a refused handshake) see why.

mod session;

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
use serde::Deserialize;
use std::time::Duration;
use uuid::Uuid;

use crate::{
    auth::authenticate,
    conversation::{self, IfMissing, OpenError},
    error::{ApiPath, AppError},
    AppState,
};

pub use session::close_code;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/chat/ws", any(chat_v1))
        .route("/v2/chat/{session_id}", any(chat_v2))
}

#[derive(Deserialize, Default)]
struct V1Query {
    #[serde(default, alias = "conversation_id", rename = "conversationId")]
    conversation_id: Option<String>,
}

/// `/api/v1/chat/ws?conversationId=...` (seed 003); a new conversation when none is given.
async fn chat_v1(
    State(state): State<AppState>,
    headers: HeaderMap,
    uri: Uri,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let query: V1Query = uri
        .query()
        .and_then(|q| serde_urlencoded::from_str(q).ok())
        .unwrap_or_default();
    let requested = match query.conversation_id.as_deref().filter(|id| !id.is_empty()) {
        None => Ok(None),
        Some(text) => Uuid::parse_str(text)
            .map(Some)
            .map_err(|_| "Invalid conversationId"),
    };
    accept(state, headers, uri, upgrade, requested, IfMissing::Refuse).await
}

/// `/v2/chat/{session_id}` (seed 001): the session id is the conversation id,
/// created for the caller if no one has it yet.
async fn chat_v2(
    State(state): State<AppState>,
    headers: HeaderMap,
    uri: Uri,
    session_id: Result<ApiPath<String>, AppError>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let requested = match session_id {
        Ok(ApiPath(text)) => Uuid::parse_str(&text)
            .map(Some)
            .map_err(|_| "Invalid session id"),
        Err(_) => Err("Invalid session id"),
    };
    accept(state, headers, uri, upgrade, requested, IfMissing::Create).await
}

async fn accept(
    state: AppState,
    headers: HeaderMap,
    uri: Uri,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
    requested: Result<Option<Uuid>, &'static str>,
    if_missing: IfMissing,
) -> Response {
    let upgrade = match upgrade {
        Ok(upgrade) => upgrade,
        Err(rejection) => {
            return AppError::bad_request("websocket_required", rejection.body_text())
                .into_response();
        }
    };
    let upgrade = upgrade
        .max_message_size(state.config.max_frame_bytes)
        .max_frame_size(state.config.max_frame_bytes);
    let target = match authenticate(&state, &headers, &uri).await {
        Err(failure) => Err(failure.reason()),
        Ok(user) => match requested {
            Err(reason) => Err(reason),
            Ok(requested) => match conversation::open(&state, &user, requested, if_missing).await {
                Ok(conversation) => Ok((user, conversation)),
                Err(OpenError::NotFound) => Err("Conversation not found"),
                Err(OpenError::Store(error)) => {
                    tracing::error!(%error, "opening conversation failed");
                    Err("Conversation unavailable")
                }
            },
        },
    };
    let sockets = state.lifecycle.sockets.clone();
    upgrade.on_upgrade(move |socket| {
        sockets.track_future(async move {
            match target {
                Ok((user, conversation)) => session::run(socket, state, user, conversation).await,
                Err(reason) => close_with(socket, close_code::POLICY, reason).await,
            }
        })
    })
}

/// Send a close frame and give the peer a moment to answer it.
pub(crate) async fn close_with(mut socket: WebSocket, code: u16, reason: &str) {
    let frame = CloseFrame {
        code,
        reason: reason.into(),
    };
    if socket.send(Message::Close(Some(frame))).await.is_err() {
        return;
    }
    let drain = async { while let Some(Ok(_)) = socket.recv().await {} };
    let _ = tokio::time::timeout(Duration::from_secs(2), drain).await;
}
