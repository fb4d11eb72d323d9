//! Conversation CRUD under `/api/conversations` (seed 000). Every query is
//! scoped to the caller, so another user's conversation is a 404.

use axum::{
    body::Bytes,
    extract::{rejection::BytesRejection, State},
    http::StatusCode,
    routing::get,
    Json, Router,
};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use uuid::Uuid;

use colloquy_protocol::ConversationAction;

use crate::{
    auth::AuthUser,
    conversation,
    error::{ApiJson, ApiPath, ApiQuery, AppError},
    input::Title,
    store::{self, Conversation, Message},
    AppState,
};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/conversations", get(list).post(create))
        .route(
            "/api/conversations/{id}",
            get(show).patch(rename).delete(remove),
        )
}

const DEFAULT_PAGE: u32 = 20;
const MAX_PAGE: u32 = 100;

#[derive(Deserialize)]
struct Page {
    limit: Option<u32>,
    offset: Option<u32>,
    /// Only conversations whose title or messages contain this text.
    q: Option<String>,
}

/// Longest search text accepted, in characters.
const MAX_SEARCH_CHARS: usize = 200;

async fn list(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    ApiQuery(page): ApiQuery<Page>,
) -> Result<Json<Value>, AppError> {
    let limit = page.limit.unwrap_or(DEFAULT_PAGE);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(AppError::bad_request(
            "invalid_query",
            format!("limit must be 1 to {MAX_PAGE}"),
        ));
    }
    let offset = page.offset.unwrap_or(0);
    let search = page.q.as_deref().map(str::trim).filter(|q| !q.is_empty());
    let mut conversations = match search {
        Some(q) if q.chars().count() > MAX_SEARCH_CHARS => {
            return Err(AppError::bad_request(
                "invalid_query",
                format!("q must be at most {MAX_SEARCH_CHARS} characters"),
            ));
        }
        Some(q) => store::search_conversations(&state.db, user.id, q, limit + 1, offset).await?,
        None => store::list_conversations(&state.db, user.id, limit + 1, offset).await?,
    };
    let has_more = conversations.len() > limit as usize;
    conversations.truncate(limit as usize);
    Ok(Json(json!({
        "conversations": conversations,
        "limit": limit,
        "offset": offset,
        "has_more": has_more,
        "next_offset": has_more.then_some(offset + limit),
    })))
}

#[derive(Deserialize)]
struct CreateBody {
    #[serde(default)]
    title: String,
}

async fn create(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<Conversation>), AppError> {
    let body = body?;
    // The body is optional: an empty POST creates an untitled conversation.
    let body: CreateBody = if body.iter().all(u8::is_ascii_whitespace) {
        CreateBody {
            title: String::new(),
        }
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| AppError::bad_request("invalid_json", e.to_string()))?
    };
    let title = Title::parse(&body.title).map_err(|e| AppError::bad_request(e.code, e.message))?;
    let conversation =
        conversation::create(&state, user.id, Uuid::now_v7(), title.as_str()).await?;
    Ok((StatusCode::CREATED, Json(conversation)))
}

#[derive(Serialize)]
struct ConversationWithMessages {
    #[serde(flatten)]
    conversation: Conversation,
    /// The newest messages before the requested position, oldest first,
    /// each reply right after its question.
    messages: Vec<Message>,
    /// The tool calls of the replies on this page (`message_id` names the
    /// reply), each as its `tool` events show it.
    tool_calls: Vec<serde_json::Value>,
    /// Older messages exist: ask again with `before=next_before`.
    has_more: bool,
    next_before: Option<u64>,
}

/// Messages per page when the client does not say.
const DEFAULT_MESSAGES_PAGE: u32 = 200;
const MAX_MESSAGES_PAGE: u32 = 1000;

#[derive(Deserialize)]
struct MessagesPage {
    /// Only messages before this turn position (a page's `next_before`).
    before: Option<u64>,
    limit: Option<u32>,
}

async fn show(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    ApiPath(id): ApiPath<Uuid>,
    ApiQuery(page): ApiQuery<MessagesPage>,
) -> Result<Json<ConversationWithMessages>, AppError> {
    let limit = page.limit.unwrap_or(DEFAULT_MESSAGES_PAGE);
    if !(1..=MAX_MESSAGES_PAGE).contains(&limit) {
        return Err(AppError::bad_request(
            "invalid_query",
            format!("limit must be 1 to {MAX_MESSAGES_PAGE}"),
        ));
    }
    let conversation = store::find_conversation(&state.db, id, user.id)
        .await?
        .ok_or(AppError::NotFound("conversation"))?;
    let page = store::messages_before(&state.db, id, page.before, limit).await?;
    let has_more = match page.first_position {
        Some(first) if page.messages.len() == limit as usize => {
            !store::messages_before(&state.db, id, Some(first), 1)
                .await?
                .messages
                .is_empty()
        }
        _ => false,
    };
    let next_before = page.first_position.filter(|_| has_more);
    let messages = page.messages;
    let reply_ids: Vec<Uuid> = messages
        .iter()
        .filter(|message| message.sender == colloquy_protocol::Sender::Assistant)
        .map(|message| message.id)
        .collect();
    let tool_calls = store::tool_calls_of_replies(&state.db, id, &reply_ids)
        .await?
        .iter()
        .map(crate::turn::tool_call_json)
        .collect();
    Ok(Json(ConversationWithMessages {
        conversation,
        messages,
        tool_calls,
        has_more,
        next_before,
    }))
}

#[derive(Deserialize)]
struct RenameBody {
    title: String,
}

async fn rename(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<RenameBody>,
) -> Result<Json<Conversation>, AppError> {
    let title = Title::parse(&body.title).map_err(|e| AppError::bad_request(e.code, e.message))?;
    if title.as_str().is_empty() {
        return Err(AppError::bad_request(
            "empty_title",
            "title must not be empty",
        ));
    }
    store::rename_conversation(&state.db, id, user.id, title.as_str())
        .await
        .map_err(|e| match e {
            store::StoreError::NotFound => AppError::NotFound("conversation"),
            other => other.into(),
        })?;
    let conversation = store::find_conversation(&state.db, id, user.id)
        .await?
        .ok_or(AppError::NotFound("conversation"))?;
    conversation::announce(
        &state,
        user.id,
        ConversationAction::Renamed,
        id,
        Some(&conversation.title),
    );
    Ok(Json(conversation))
}

async fn remove(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<StatusCode, AppError> {
    store::delete_conversation(&state.db, id, user.id)
        .await
        .map_err(|e| match e {
            store::StoreError::NotFound => AppError::NotFound("conversation"),
            other => other.into(),
        })?;
    // Replies still running for it have nowhere to be stored: stop them.
    state.turns.cancel_replies(id);
    state.hub.forget(id);
    conversation::announce(&state, user.id, ConversationAction::Deleted, id, None);
    Ok(StatusCode::NO_CONTENT)
}
