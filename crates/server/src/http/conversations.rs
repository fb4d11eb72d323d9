//! Conversation CRUD under `/api/conversations` (seed 000). Every query is
//! scoped to the caller, so another user's conversation is a 404.

use axum::{
    body::Bytes,
    extract::{rejection::BytesRejection, State},
    http::StatusCode,
    Json,
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use colloquy_protocol::ConversationAction;

use super::branches::{self, ConversationWithMessages};
use crate::{
    auth::AuthUser,
    conversation,
    error::{ApiJson, ApiPath, ApiQuery, AppError},
    input::Title,
    store::{self, Conversation},
    AppState,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(show, rename, remove))
}

const DEFAULT_PAGE: u32 = 20;
const MAX_PAGE: u32 = 100;

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct Page {
    /// 1 to 100; 20 when absent.
    limit: Option<u32>,
    /// Conversations to skip (a page's `next_offset`).
    offset: Option<u32>,
    /// Only conversations whose title or messages contain this text (at
    /// most 200 characters).
    q: Option<String>,
}

/// One page of the caller's conversations, newest activity first.
#[derive(Serialize, ToSchema)]
struct ConversationPage {
    conversations: Vec<Conversation>,
    limit: u32,
    offset: u32,
    has_more: bool,
    /// The `offset` of the next page, when there is one.
    next_offset: Option<u32>,
}

/// Longest search text accepted, in characters.
const MAX_SEARCH_CHARS: usize = 200;

/// The caller's conversations, a page at a time, optionally searched.
#[utoipa::path(
    get, path = "/api/conversations", tag = "conversations",
    params(Page),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of conversations.", body = ConversationPage),
        (status = 400, description = "`invalid_query`: a bad `limit`, `offset` or `q`."),
    ),
)]
async fn list(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    ApiQuery(page): ApiQuery<Page>,
) -> Result<Json<ConversationPage>, AppError> {
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
    Ok(Json(ConversationPage {
        conversations,
        limit,
        offset,
        has_more,
        next_offset: has_more.then_some(offset + limit),
    }))
}

#[derive(Deserialize, ToSchema)]
struct CreateBody {
    /// One line; empty (or absent) for an untitled conversation, which
    /// gets a title after its first reply.
    #[serde(default)]
    title: String,
}

/// Create a conversation.
///
/// The body is optional: an empty POST creates an untitled conversation.
/// The caller's sockets are told with a `conversation` `created` event.
#[utoipa::path(
    post, path = "/api/conversations", tag = "conversations",
    request_body(content = Option<CreateBody>, description = "Optional."),
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Created.", body = Conversation),
        (status = 400, description = "`invalid_json` or an invalid `title`."),
    ),
)]
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

/// Messages per page when the client does not say.
const DEFAULT_MESSAGES_PAGE: u32 = 200;
const MAX_MESSAGES_PAGE: u32 = 1000;

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct MessagesPage {
    /// Only messages before this path position (a page's `next_before`).
    before: Option<u64>,
    /// 1 to 1000 messages; 200 when absent.
    limit: Option<u32>,
}

/// A conversation and the newest messages of its active path.
///
/// Each message has `parent_id`, `sibling_count`, `sibling_index` and
/// `sibling_ids` (its alternatives: edits, regenerated replies). Older
/// messages come a page at a time with `before`.
#[utoipa::path(
    get, path = "/api/conversations/{id}", tag = "conversations",
    params(("id" = Uuid, Path, description = "The conversation."), MessagesPage),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The conversation.", body = ConversationWithMessages),
        (status = 400, description = "`invalid_path` or `invalid_query`."),
        (status = 404, description = "`not_found`: no such conversation of the caller's."),
    ),
)]
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
    Ok(Json(
        branches::path_page(&state, conversation, page.before, limit).await?,
    ))
}

#[derive(Deserialize, ToSchema)]
struct RenameBody {
    /// One non-empty line.
    title: String,
}

/// Rename a conversation.
///
/// A title the user sets is never replaced by a generated one. The
/// caller's sockets are told with a `conversation` `renamed` event.
#[utoipa::path(
    patch, path = "/api/conversations/{id}", tag = "conversations",
    params(("id" = Uuid, Path, description = "The conversation.")),
    request_body = RenameBody,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Renamed.", body = Conversation),
        (status = 400, description = "`empty_title`, an invalid title or a malformed body."),
        (status = 404, description = "`not_found`: no such conversation of the caller's."),
    ),
)]
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

/// Delete a conversation and its messages.
///
/// Replies still running for it are stopped; the caller's sockets are told
/// with a `conversation` `deleted` event.
#[utoipa::path(
    delete, path = "/api/conversations/{id}", tag = "conversations",
    params(("id" = Uuid, Path, description = "The conversation.")),
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Deleted."),
        (status = 404, description = "`not_found`: no such conversation of the caller's."),
    ),
)]
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
