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
};
use colloquy_protocol::Seq;
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::{router::OpenApiRouter, routes};
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

/// The two JSON chat sockets, upgraded from `GET` (the only method an
/// HTTP/1.1 WebSocket handshake uses; this server speaks no HTTP/2).
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(chat_v1))
        .routes(routes!(chat_v2))
}

#[derive(Deserialize, Default, IntoParams)]
#[into_params(parameter_in = Query)]
struct SocketQuery {
    /// The conversation to open (also accepted as `conversation_id`); a new
    /// one when absent.
    #[serde(default, alias = "conversation_id", rename = "conversationId")]
    #[param(value_type = Option<uuid::Uuid>)]
    conversation_id: Option<String>,
    /// Resume: replay every event after this seq.
    #[serde(default)]
    #[param(value_type = Option<u64>)]
    last_seq: Option<String>,
    /// Speak replies (seed 000's `tts` preference): `1`/`true` or `0`/`false`.
    #[serde(default)]
    tts: Option<String>,
}

/// What both chat sockets' documentation says about the upgrade and its
/// refusals; the handlers' own comments say what differs.
macro_rules! chat_socket_doc {
    () => {
        "The upgrade is answered 101; a request that is no WebSocket handshake gets 400          `websocket_required`, a disallowed `Origin` 403 `origin_not_allowed`. Then JSON          events both ways (`colloquy-protocol`). Refusals after the upgrade are close          codes with a reason: 1008 (`Not authenticated`, `User not found`, `Conversation          not found`, an invalid id or `last_seq`, too many sockets: retrying will not          help), 1009 (a frame over `max_frame_bytes`), 1011 (storage failed: retry),          1012 (the server restarts: reconnect and resume), 1013 (the server is full, or          the client fell too far behind: retry later), 1001 (no heartbeat)."
    };
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

/// The JSON chat socket.
///
/// `/api/v1/chat/ws?conversationId=...` (seed 003); a new conversation when
/// none is given: its id comes in `ready`, and it is stored (listed,
/// announced `created`) with its first message.
#[utoipa::path(
    get, path = "/api/v1/chat/ws", tag = "sockets",
    description = chat_socket_doc!(),
    params(SocketQuery),
    security(("bearer" = [])),
    responses(
        (status = 101, description = "Switching to the WebSocket protocol."),
        (status = 400, description = "`websocket_required`."),
        (status = 403, description = "`origin_not_allowed`."),
    ),
)]
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

/// The seed 001 chat socket, one conversation per session id.
///
/// `/v2/chat/{session_id}` (seed 001): the session id is the conversation id,
/// the caller's if no one else has it yet (stored with its first message).
#[utoipa::path(
    get, path = "/v2/chat/{session_id}", tag = "sockets",
    description = chat_socket_doc!(),
    params(
        ("session_id" = Uuid, Path, description = "The conversation's id, chosen by the client."),
        ("last_seq" = Option<u64>, Query, description = "Resume: replay every event after this seq."),
        ("tts" = Option<String>, Query, description = "Speak replies: `1`/`true` or `0`/`false`."),
    ),
    security(("bearer" = [])),
    responses(
        (status = 101, description = "Switching to the WebSocket protocol."),
        (status = 400, description = "`websocket_required`."),
        (status = 403, description = "`origin_not_allowed`."),
    ),
)]
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
