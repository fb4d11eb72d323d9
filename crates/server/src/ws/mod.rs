//! The JSON chat sockets. Upgrade handlers authenticate, open the
//! conversation, upgrade, then hand the socket to [`session::run`]; the
//! session decodes `audio` events with [`audio`]. Failures are reported the
//! way seed 004 specifies: the socket is accepted, then closed with a code
//! and a reason (see [`crate::socket`]): 1008 for what retrying cannot fix,
//! 1011 (storage failed) or 1013 (server full) for what it can.

mod audio;
mod session;

use axum::{
    extract::{
        ws::{rejection::WebSocketUpgradeRejection, WebSocketUpgrade},
        State,
    },
    http::{HeaderMap, Uri},
    response::{IntoResponse, Response},
    routing::any,
    Router,
};
use colloquy_protocol::Seq;
use serde::Deserialize;
use uuid::Uuid;

use crate::{
    auth::{authenticate, AuthFailure},
    conversation::{self, IfMissing, OpenError},
    error::{ApiPath, AppError},
    hub::ChannelHandle,
    limits::{SocketPermit, SocketRefused},
    socket::{self, close_code, prepare_upgrade},
    store::User,
    AppState,
};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/chat/ws", any(chat_v1))
        .route("/v2/chat/{session_id}", any(chat_v2))
}

#[derive(Deserialize, Default)]
struct SocketQuery {
    #[serde(default, alias = "conversation_id", rename = "conversationId")]
    conversation_id: Option<String>,
    /// Resume: replay every event after this seq.
    #[serde(default)]
    last_seq: Option<String>,
    /// Speak replies (seed 000's `tts` preference): `1`/`true` or `0`/`false`.
    #[serde(default)]
    tts: Option<String>,
}

fn socket_query(uri: &Uri) -> SocketQuery {
    uri.query()
        .and_then(|q| serde_urlencoded::from_str(q).ok())
        .unwrap_or_default()
}

/// What a socket asked for, checked before the upgrade.
struct Request {
    conversation: Result<Option<Uuid>, &'static str>,
    resume_after: Result<Option<Seq>, &'static str>,
    if_missing: IfMissing,
    tts: Option<bool>,
}

fn parse_tts(query: &SocketQuery) -> Option<bool> {
    match query.tts.as_deref()? {
        "1" | "true" | "on" | "yes" => Some(true),
        _ => Some(false),
    }
}

fn parse_last_seq(query: &SocketQuery) -> Result<Option<Seq>, &'static str> {
    match query.last_seq.as_deref().filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(text) => text.parse().map(Some).map_err(|_| "Invalid last_seq"),
    }
}

/// `/api/v1/chat/ws?conversationId=...` (seed 003); a new conversation when
/// none is given: its id comes in `ready`, and it is stored (listed,
/// announced `created`) with its first message.
async fn chat_v1(
    State(state): State<AppState>,
    headers: HeaderMap,
    uri: Uri,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let query = socket_query(&uri);
    let conversation = match query.conversation_id.as_deref().filter(|id| !id.is_empty()) {
        None => Ok(None),
        Some(text) => Uuid::parse_str(text)
            .map(Some)
            .map_err(|_| "Invalid conversationId"),
    };
    let request = Request {
        conversation,
        resume_after: parse_last_seq(&query),
        if_missing: IfMissing::Refuse,
        tts: parse_tts(&query),
    };
    accept(state, headers, uri, upgrade, request).await
}

/// `/v2/chat/{session_id}` (seed 001): the session id is the conversation id,
/// the caller's if no one else has it yet (stored with its first message).
async fn chat_v2(
    State(state): State<AppState>,
    headers: HeaderMap,
    uri: Uri,
    session_id: Result<ApiPath<String>, AppError>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let conversation = match session_id {
        Ok(ApiPath(text)) => Uuid::parse_str(&text)
            .map(Some)
            .map_err(|_| "Invalid session id"),
        Err(_) => Err("Invalid session id"),
    };
    let query = socket_query(&uri);
    let request = Request {
        conversation,
        resume_after: parse_last_seq(&query),
        if_missing: IfMissing::Create,
        tts: parse_tts(&query),
    };
    accept(state, headers, uri, upgrade, request).await
}

async fn accept(
    state: AppState,
    headers: HeaderMap,
    uri: Uri,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
    request: Request,
) -> Response {
    let upgrade = match prepare_upgrade(&state, &headers, upgrade) {
        Ok(upgrade) => upgrade,
        Err(refused) => return refused.into_response(),
    };
    let admitted = admit(&state, &headers, &uri, request).await;
    socket::serve(state, upgrade, admitted, session::run)
}

/// Everything checked before a socket may start its session.
pub(crate) struct Admitted {
    pub user: User,
    /// The conversation's channel (its row may not exist yet).
    pub channel: ChannelHandle,
    pub resume_after: Option<Seq>,
    /// Speak replies on this socket.
    pub tts: bool,
    /// Holds this socket's place in the user's socket quota.
    pub permit: SocketPermit,
}

/// Authenticate, take a socket slot and open the conversation; the error is
/// the close code and reason (seed 004's wording where it has one): 1008
/// when retrying cannot help, 1011 or 1013 when it can.
async fn admit(
    state: &AppState,
    headers: &HeaderMap,
    uri: &Uri,
    request: Request,
) -> Result<Admitted, (u16, &'static str)> {
    let policy = |reason| (close_code::POLICY, reason);
    let user = authenticate(state, headers, uri)
        .await
        .map_err(AuthFailure::close)?;
    let requested = request.conversation.map_err(policy)?;
    let resume_after = request.resume_after.map_err(policy)?;
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
    let channel = conversation::open(state, &user, requested, request.if_missing)
        .await
        .map_err(|error| match error {
            OpenError::NotFound => policy("Conversation not found"),
            OpenError::Store(error) => {
                tracing::error!(%error, "opening conversation failed");
                (close_code::INTERNAL_ERROR, "Conversation unavailable")
            }
        })?;
    // Nothing was ever published in a conversation not stored yet: a client
    // resuming after some seq saw one that has since been deleted.
    if channel.unstored().is_some() && resume_after.is_some_and(|seq| seq > 0) {
        return Err(policy("Conversation not found"));
    }
    Ok(Admitted {
        user,
        channel,
        resume_after,
        tts: request.tts.unwrap_or(state.config.audio.tts),
        permit,
    })
}
