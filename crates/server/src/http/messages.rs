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
    routing::post,
    Json, Router,
};
use colloquy_protocol::{MessageStatus, ServerEvent};
use futures::Stream;
use serde::Deserialize;
use serde_json::json;
use tokio::sync::broadcast::{self, error::RecvError};
use uuid::Uuid;

use crate::{
    auth::AuthUser,
    conversation::{self, IfMissing, OpenError},
    error::{ApiJson, AppError},
    hub::{ChannelHandle, Published},
    input::{ClientId, UserText},
    store::{self, Message},
    turn::{error_text, final_event, SubmitError, Submitted},
    AppState,
};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/messages", post(post_message))
        .route("/v2/chat", post(v2_chat))
}

/// How often a waiter that fell behind the live events looks for the stored reply.
const STORED_REPLY_POLL: Duration = Duration::from_millis(200);

#[derive(Deserialize)]
struct MessageBody {
    #[serde(default, alias = "conversationId", alias = "session_id")]
    conversation_id: Option<Uuid>,
    #[serde(alias = "message")]
    content: String,
    #[serde(default)]
    client_id: Option<String>,
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
    if !state.limits.allow_user_message(user.id) {
        return Err(AppError::RateLimited);
    }
    let text = UserText::parse(body.content, state.config.max_message_chars)
        .map_err(|e| AppError::bad_request(e.code, e.message))?;
    let client_id = body
        .client_id
        .map(ClientId::parse)
        .transpose()
        .map_err(|e| AppError::bad_request(e.code, e.message))?;
    let conversation = conversation::open(state, user, body.conversation_id, if_missing)
        .await
        .map_err(|e| match e {
            OpenError::NotFound => AppError::NotFound("conversation"),
            OpenError::Store(e) => e.into(),
        })?;
    let channel = state.hub.channel(conversation.id, conversation.last_seq);
    let (_, events) = channel.subscribe().await;
    let submitted = state
        .turns
        .submit(&channel, text, client_id)
        .await
        .map_err(|e| match e {
            SubmitError::ShuttingDown => AppError::Unavailable {
                code: "shutting_down",
                message: "the server is restarting; please retry".into(),
            },
            SubmitError::ConversationGone => AppError::NotFound("conversation"),
            SubmitError::Store(e) => e.into(),
        })?;
    Ok(HttpTurn {
        channel,
        events,
        submitted,
    })
}

/// Wait for the stored reply, from the live events or, if they were missed, from the database.
async fn wait_for_reply(turn: &mut HttpTurn, db: &store::Pool) -> Result<Message, AppError> {
    let reply_id = turn.submitted.reply_id;
    let conversation_id = turn.channel.id;
    loop {
        if let Some(stored) = store::find_message(db, conversation_id, reply_id).await? {
            return Ok(stored);
        }
        match turn.events.recv().await {
            Ok(published) => {
                if matches!(&published.event, ServerEvent::Message { message_id, .. } if *message_id == reply_id)
                {
                    continue; // stored before it was published: read it back above
                }
            }
            Err(RecvError::Lagged(_)) => tokio::time::sleep(STORED_REPLY_POLL).await,
            Err(RecvError::Closed) => {
                return Err(AppError::Internal(anyhow::anyhow!("event channel closed")))
            }
        }
    }
}

fn reply_status_code(code: &str) -> StatusCode {
    match code {
        "no_model" | "overloaded" | "provider_rate_limited" => StatusCode::SERVICE_UNAVAILABLE,
        "provider_timeout" => StatusCode::GATEWAY_TIMEOUT,
        _ => StatusCode::BAD_GATEWAY,
    }
}

/// The JSON answer: both messages, or the reply's error with the ids of what was stored.
fn reply_response(conversation_id: Uuid, submitted: &Submitted, reply: Message) -> Response {
    let user_message = json!({
        "id": submitted.message_id,
        "seq": submitted.ack.seq(),
        "client_id": match &submitted.ack { ServerEvent::Ack { client_id, .. } => client_id.clone(), _ => None },
    });
    if reply.status == MessageStatus::Error {
        let code = reply
            .error_code
            .clone()
            .unwrap_or_else(|| "provider_error".into());
        let body = json!({
            "error": { "code": code, "message": error_text(&code) },
            "conversation_id": conversation_id,
            "user_message": user_message,
            "assistant_message": reply,
        });
        return (reply_status_code(&code), Json(body)).into_response();
    }
    Json(json!({
        "conversation_id": conversation_id,
        "duplicate": submitted.duplicate,
        "user_message": user_message,
        "assistant_message": reply,
    }))
    .into_response()
}

/// `POST /api/messages`: a pure-text request answered with the complete reply.
async fn post_message(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    ApiJson(body): ApiJson<MessageBody>,
) -> Result<Response, AppError> {
    let mut turn = start_turn(&state, &user, body, IfMissing::Refuse).await?;
    let reply = wait_for_reply(&mut turn, &state.db).await?;
    Ok(reply_response(turn.channel.id, &turn.submitted, reply))
}

/// `POST /v2/chat`: SSE when the client accepts `text/event-stream`, else JSON.
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
        return Ok(reply_response(turn.channel.id, &turn.submitted, reply));
    }
    let stream = reply_events(turn, state.db.clone());
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

/// The turn's events as SSE: `ready`, the `ack`, then the reply's events up to its final message.
fn reply_events(turn: HttpTurn, db: store::Pool) -> impl Stream<Item = Result<Event, Infallible>> {
    enum Step {
        Ready,
        Ack,
        Live,
        Done,
    }
    let start = (turn, db, Step::Ready);
    futures::stream::unfold(start, |(mut turn, db, step)| async move {
        let reply_id = turn.submitted.reply_id;
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
                Some((Ok(ack), (turn, db, Step::Live)))
            }
            Step::Live => loop {
                // A duplicate whose reply is already stored: send it and end.
                if turn.submitted.duplicate {
                    if let Ok(Some(stored)) =
                        store::find_message(&db, turn.channel.id, reply_id).await
                    {
                        return Some((
                            Ok(sse_event(&final_event(&stored))),
                            (turn, db, Step::Done),
                        ));
                    }
                }
                match turn.events.recv().await {
                    Ok(published) => {
                        let event = &published.event;
                        let (ours, last) = match event {
                            ServerEvent::Delta { message_id, .. } => {
                                (*message_id == reply_id, false)
                            }
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
                        let error = ServerEvent::Error {
                            code: "resync_required".into(),
                            message: "events were missed; reload the conversation".into(),
                            message_id: Some(reply_id),
                            seq: None,
                            client_id: None,
                        };
                        return Some((Ok(sse_event(&error)), (turn, db, Step::Done)));
                    }
                }
            },
            Step::Done => None,
        }
    })
}
