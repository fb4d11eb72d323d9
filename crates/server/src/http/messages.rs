//! Chat over plain HTTP, for clients that cannot hold a WebSocket (seed 000:
//! HTTP-only flows keep working): `POST /api/messages` answers with the whole
//! reply as JSON; `POST /v2/chat` (seed 001's fallback) streams the same
//! events as the socket as Server-Sent Events when asked, JSON otherwise.
//! Both run the very same turn as the sockets.

use std::{convert::Infallible, sync::Arc, time::Duration};

use axum::{
    extract::State,
    http::{header::ACCEPT, HeaderMap, StatusCode},
    response::{
        sse::{Event, KeepAlive, Sse},
        IntoResponse, Response,
    },
    Json,
};
use colloquy_protocol::{MessageStatus, Sender, ServerEvent};
use futures::Stream;
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast::{self, error::RecvError};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use crate::{
    auth::AuthUser,
    conversation::{self, IfMissing, OpenError},
    error::{ApiJson, AppError},
    http::openapi::ErrorDetail,
    hub::{ChannelHandle, Published},
    input::{ClientId, UserText},
    store::{self, Message, Parent},
    turn::{error_text, final_event, tool_call_json, SubmitError, Submitted, TurnOptions},
    AppState,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(post_message))
        .routes(routes!(v2_chat))
}

#[derive(Deserialize, ToSchema)]
struct MessageBody {
    /// The conversation (also accepted as `conversationId` or
    /// `session_id`); a new one when absent.
    #[serde(default, alias = "conversationId", alias = "session_id")]
    conversation_id: Option<Uuid>,
    /// The user's text (also accepted as `message`).
    #[serde(alias = "message")]
    content: String,
    /// Makes a resend idempotent: a repeat gets the original reply.
    #[serde(default)]
    client_id: Option<String>,
    /// One of `/api/config`'s `models.available` ids; the default when absent.
    #[serde(default)]
    model: Option<String>,
    /// Branches: the reply this message follows (`null`: a new first
    /// message). Absent: the end of the active path. An edit names the
    /// edited message's parent.
    #[serde(default, deserialize_with = "colloquy_protocol::present")]
    #[schema(value_type = Option<Uuid>)]
    parent_id: Option<Option<Uuid>>,
}

/// A turn started over HTTP, subscribed to its conversation before it began.
struct HttpTurn {
    channel: ChannelHandle,
    events: broadcast::Receiver<Arc<Published>>,
    submitted: Submitted,
}

async fn start_turn(
    state: &AppState,
    user: &store::User,
    body: MessageBody,
    if_missing: IfMissing,
) -> Result<HttpTurn, AppError> {
    let text = UserText::parse(body.content, state.config.max_message_chars)
        .map_err(|e| AppError::bad_request(e.code, e.message))?;
    let client_id = body
        .client_id
        .map(ClientId::parse)
        .transpose()
        .map_err(|e| AppError::bad_request(e.code, e.message))?;
    let model = state
        .turns
        .models()
        .pick(body.model.as_deref())
        .map_err(|e| AppError::bad_request(e.code, e.message))?;
    // A new conversation is stored only if the message is accepted.
    let channel = conversation::open(state, user, body.conversation_id, if_missing)
        .await
        .map_err(|e| match e {
            OpenError::NotFound => AppError::NotFound("conversation"),
            OpenError::Store(e) => e.into(),
        })?;
    let (_, events) = channel.subscribe().await;
    let submitted = state
        .turns
        .submit_with(
            &channel,
            text,
            client_id,
            TurnOptions {
                model,
                parent: body.parent_id.map_or(Parent::ActiveLeaf, Parent::Message),
                ..TurnOptions::default()
            },
        )
        .await
        .map_err(|e| match e {
            SubmitError::ShuttingDown => AppError::Unavailable {
                code: "shutting_down",
                message: "the server is restarting; please retry".into(),
            },
            SubmitError::ConversationGone => AppError::NotFound("conversation"),
            SubmitError::RateLimited => AppError::RateLimited,
            SubmitError::ClusterUnavailable => AppError::Unavailable {
                code: "unavailable",
                message: SubmitError::ClusterUnavailable.to_string(),
            },
            SubmitError::Busy => AppError::Unavailable {
                code: "busy",
                message: SubmitError::Busy.to_string(),
            },
            SubmitError::InvalidBranch(message) => AppError::bad_request("invalid_branch", message),
            SubmitError::QuotaExceeded(quota) => AppError::QuotaExceeded(quota),
            error @ SubmitError::ModelNotInPlan { .. } => AppError::Forbidden {
                code: "model_not_in_plan",
                message: error.to_string(),
            },
            SubmitError::Store(e) => e.into(),
        })?;
    Ok(HttpTurn {
        channel,
        events,
        submitted,
    })
}

/// Wait for the reply to end and return it as stored. The database is read
/// only when it can hold the answer: a duplicate's reply may be stored
/// already; otherwise on the reply's final event, or after falling behind
/// the live events. A reply that ended without being stored (its storage
/// failed) is answered from its final event.
async fn wait_for_reply(turn: &mut HttpTurn, db: &store::Pool) -> Result<Message, AppError> {
    let reply_id = turn.submitted.reply_id;
    let conversation_id = turn.channel.id;
    if turn.submitted.duplicate {
        if let Some(stored) = store::find_message(db, conversation_id, reply_id).await? {
            return Ok(stored);
        }
    }
    let mut error_code = None;
    loop {
        match turn.events.recv().await {
            Ok(published) => match &published.event {
                ServerEvent::Error {
                    message_id, code, ..
                } if *message_id == Some(reply_id) => error_code = Some(code.clone()),
                ServerEvent::Message { message_id, .. } if *message_id == reply_id => {
                    return match store::find_message(db, conversation_id, reply_id).await {
                        Ok(Some(stored)) => Ok(stored),
                        Ok(None) | Err(_) => Ok(unstored_reply(
                            &published.event,
                            conversation_id,
                            error_code,
                        )),
                    };
                }
                _ => {}
            },
            Err(RecvError::Lagged(_)) => {
                if let Some(stored) = store::find_message(db, conversation_id, reply_id).await? {
                    return Ok(stored);
                }
            }
            Err(RecvError::Closed) => {
                return Err(AppError::Internal(anyhow::anyhow!("event channel closed")))
            }
        }
    }
}

/// A reply known only from its final event (it could not be stored).
fn unstored_reply(
    event: &ServerEvent,
    conversation_id: Uuid,
    error_code: Option<String>,
) -> Message {
    let (id, seq, content, sender, status) = match event {
        ServerEvent::Message {
            message_id,
            seq,
            content,
            sender,
            status,
            ..
        } => (*message_id, *seq, content.clone(), *sender, *status),
        _ => (
            Uuid::nil(),
            0,
            String::new(),
            Sender::Assistant,
            MessageStatus::Error,
        ),
    };
    Message {
        id,
        conversation_id,
        sender,
        content,
        status,
        seq,
        client_id: None,
        reply_id: None,
        error_code: error_code.or_else(|| Some("storage_error".into())),
        // Not stored: it is on no path.
        parent_id: None,
        created_at: chrono::Utc::now(),
    }
}

fn reply_status_code(code: &str) -> StatusCode {
    match code {
        "no_model" | "overloaded" | "provider_rate_limited" | "storage_error" => {
            StatusCode::SERVICE_UNAVAILABLE
        }
        "not_found" => StatusCode::NOT_FOUND,
        "provider_timeout" => StatusCode::GATEWAY_TIMEOUT,
        _ => StatusCode::BAD_GATEWAY,
    }
}

/// The stored user message of a turn.
#[derive(Serialize, ToSchema)]
struct UserMessageRef {
    id: Uuid,
    seq: Option<u64>,
    client_id: Option<String>,
}

/// A turn's answer: the user's message, the complete reply and the tool
/// calls the reply made.
#[derive(Serialize, ToSchema)]
struct Reply {
    conversation_id: Uuid,
    /// The message repeated a `client_id` already sent: this is the
    /// original's reply.
    duplicate: bool,
    user_message: UserMessageRef,
    assistant_message: Message,
    /// In call order: name, arguments, result or error, duration.
    #[schema(value_type = Vec<Object>)]
    tool_calls: Vec<serde_json::Value>,
}

/// A turn whose reply failed: the error and what was stored.
#[derive(Serialize, ToSchema)]
struct ReplyFailed {
    error: ErrorDetail,
    conversation_id: Uuid,
    user_message: UserMessageRef,
    /// The reply as stored, `status: error`, with what arrived before the failure.
    assistant_message: Message,
    #[schema(value_type = Vec<Object>)]
    tool_calls: Vec<serde_json::Value>,
}

/// The JSON answer: both messages and the reply's tool calls, or the
/// reply's error with the ids of what was stored.
async fn reply_response(
    db: &store::Pool,
    conversation_id: Uuid,
    submitted: &Submitted,
    reply: Message,
) -> Result<Response, AppError> {
    let tool_calls: Vec<serde_json::Value> =
        store::tool_calls_of_replies(db, conversation_id, &[reply.id])
            .await?
            .iter()
            .map(tool_call_json)
            .collect();
    let user_message = UserMessageRef {
        id: submitted.message_id,
        seq: submitted.ack.seq(),
        client_id: match &submitted.ack {
            ServerEvent::Ack { client_id, .. } => client_id.clone(),
            _ => None,
        },
    };
    if reply.status == MessageStatus::Error {
        let code = reply
            .error_code
            .clone()
            .unwrap_or_else(|| "provider_error".into());
        let status = reply_status_code(&code);
        let body = ReplyFailed {
            error: ErrorDetail {
                message: error_text(&code).into(),
                code,
            },
            conversation_id,
            user_message,
            assistant_message: reply,
            tool_calls,
        };
        return Ok((status, Json(body)).into_response());
    }
    Ok(Json(Reply {
        conversation_id,
        duplicate: submitted.duplicate,
        user_message,
        assistant_message: reply,
        tool_calls,
    })
    .into_response())
}

/// Send a message and wait for the complete reply.
///
/// `POST /api/messages`: a pure-text request answered with the complete
/// reply, in an existing conversation or a new one. The same turn as the
/// sockets: their subscribers see it live.
#[utoipa::path(
    post, path = "/api/messages", tag = "chat",
    request_body = MessageBody,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The reply.", body = Reply),
        (status = 400, description = "An invalid `content`, `client_id` or `model` (`unknown_model`), or a malformed body."),
        (status = 404, description = "`not_found`: no such conversation of the caller's."),
        (status = 403, description = "`model_not_in_plan`: the caller's plan does not include the model."),
        (status = 429, description = "`rate_limited`: too many messages; `quota_exceeded`: the plan's daily quota is spent (with `plan`, `limit`, `max`, `used`, `resets_at`, `upgrade`)."),
        (status = 502, description = "The reply failed upstream (`provider_error`, ...).", body = ReplyFailed),
        (status = 503, description = "`busy`, `shutting_down`, `unavailable`; or the reply failed with `no_model`, `overloaded`, `provider_rate_limited`, `storage_error` (then the body is a `ReplyFailed`)."),
        (status = 504, description = "The reply timed out upstream (`provider_timeout`).", body = ReplyFailed),
    ),
)]
async fn post_message(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    ApiJson(body): ApiJson<MessageBody>,
) -> Result<Response, AppError> {
    let mut turn = start_turn(&state, &user, body, IfMissing::Refuse).await?;
    let reply = wait_for_reply(&mut turn, &state.db).await?;
    reply_response(&state.db, turn.channel.id, &turn.submitted, reply).await
}

/// Send a message; the reply streams as Server-Sent Events or comes as JSON.
///
/// `POST /v2/chat`: SSE when the client accepts `text/event-stream` (events
/// `ready`, `ack`, then the reply's `delta`s up to its final `message`, each
/// `data` a socket event as JSON, `id` its seq), else the same JSON as
/// `POST /api/messages`. A conversation id not yet used is created.
#[utoipa::path(
    post, path = "/v2/chat", tag = "chat",
    request_body = MessageBody,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The reply: an event stream, or JSON.",
            content((String = "text/event-stream"), (Reply = "application/json"))),
        (status = 400, description = "An invalid `content`, `client_id` or `model`, or a malformed body."),
        (status = 404, description = "`not_found`: the conversation is another user's."),
        (status = 403, description = "`model_not_in_plan`: the caller's plan does not include the model."),
        (status = 429, description = "`rate_limited`: too many messages; `quota_exceeded`: the plan's daily quota is spent (with `plan`, `limit`, `max`, `used`, `resets_at`, `upgrade`)."),
        (status = 502, description = "JSON only: the reply failed upstream.", body = ReplyFailed),
        (status = 503, description = "`busy`, `shutting_down` or `unavailable`; JSON only: the reply failed with `no_model`, `overloaded`, `provider_rate_limited` or `storage_error`."),
        (status = 504, description = "JSON only: the reply timed out upstream.", body = ReplyFailed),
    ),
)]
async fn v2_chat(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    headers: HeaderMap,
    ApiJson(body): ApiJson<MessageBody>,
) -> Result<Response, AppError> {
    let wants_sse = headers
        .get(ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.contains("text/event-stream"));
    let mut turn = start_turn(&state, &user, body, IfMissing::Create).await?;
    if !wants_sse {
        let reply = wait_for_reply(&mut turn, &state.db).await?;
        return reply_response(&state.db, turn.channel.id, &turn.submitted, reply).await;
    }
    let idle = Duration::from_secs(state.config.sse_idle_timeout_secs);
    let stream = reply_events(turn, state.db.clone(), idle);
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response())
}

fn sse_event(event: &ServerEvent) -> Event {
    let data = serde_json::to_string(event).unwrap_or_default();
    let sse = Event::default().event(event.kind()).data(data);
    match event.seq() {
        Some(seq) => sse.id(seq.to_string()),
        None => sse,
    }
}

/// The turn's events as SSE: `ready`, the `ack`, then the reply's events up
/// to its final message. A stream with no event for `idle` ends with an
/// `error` event.
fn reply_events(
    turn: HttpTurn,
    db: store::Pool,
    idle: Duration,
) -> impl Stream<Item = Result<Event, Infallible>> {
    enum Step {
        Ready,
        Ack,
        Live,
        /// The stored final message of a duplicate's finished reply.
        Stored(ServerEvent),
        Done,
    }
    let start = (turn, db, Step::Ready);
    futures::stream::unfold(start, move |(mut turn, db, step)| async move {
        let reply_id = turn.submitted.reply_id;
        let error = |code: &str, message: &str| ServerEvent::Error {
            code: code.into(),
            message: message.into(),
            message_id: Some(reply_id),
            seq: None,
            client_id: None,
            quota: None,
        };
        match step {
            Step::Ready => {
                let ready = ServerEvent::Ready {
                    conversation_id: turn.channel.id,
                    last_seq: turn
                        .submitted
                        .ack
                        .seq()
                        .unwrap_or_default()
                        .saturating_sub(1),
                };
                Some((Ok(sse_event(&ready)), (turn, db, Step::Ack)))
            }
            Step::Ack => {
                let ack = sse_event(&turn.submitted.ack);
                // A duplicate whose reply is already stored: that reply is all there is to send.
                if turn.submitted.duplicate {
                    if let Ok(Some(stored)) =
                        store::find_message(&db, turn.channel.id, reply_id).await
                    {
                        let stored = Step::Stored(final_event(&stored));
                        return Some((Ok(ack), (turn, db, stored)));
                    }
                }
                Some((Ok(ack), (turn, db, Step::Live)))
            }
            Step::Live => loop {
                let received = match tokio::time::timeout(idle, turn.events.recv()).await {
                    Ok(received) => received,
                    Err(_) => {
                        let timeout =
                            error("timeout", "no event for too long; reload the conversation");
                        return Some((Ok(sse_event(&timeout)), (turn, db, Step::Done)));
                    }
                };
                match received {
                    Ok(published) => {
                        let event = &published.event;
                        let (ours, last) = match event {
                            ServerEvent::Delta { message_id, .. } => {
                                (*message_id == reply_id, false)
                            }
                            ServerEvent::Tool(tool) => (tool.message_id == reply_id, false),
                            ServerEvent::Error { message_id, .. } => {
                                (*message_id == Some(reply_id), false)
                            }
                            ServerEvent::Message { message_id, .. } => {
                                (*message_id == reply_id, true)
                            }
                            _ => (false, false),
                        };
                        if ours {
                            let next = if last { Step::Done } else { Step::Live };
                            return Some((Ok(sse_event(event)), (turn, db, next)));
                        }
                    }
                    Err(RecvError::Lagged(_)) | Err(RecvError::Closed) => {
                        let resync = error(
                            "resync_required",
                            "events were missed; reload the conversation",
                        );
                        return Some((Ok(sse_event(&resync)), (turn, db, Step::Done)));
                    }
                }
            },
            Step::Stored(event) => Some((Ok(sse_event(&event)), (turn, db, Step::Done))),
            Step::Done => None,
        }
    })
}
