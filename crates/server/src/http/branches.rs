//! A conversation's active path over HTTP, and switching branch.
//!
//! `GET /api/conversations/{id}` shows the path from the first message to
//! the active leaf ([`path_page`]); each message says how many alternatives
//! it has (messages with the same parent: an edit, a regenerated reply) and
//! which of them it is, with their ids. `PUT /api/conversations/{id}/active`
//! moves the active leaf under another message, and answers with the new
//! path. A reply already being written keeps writing on its own branch.

use axum::{extract::State, Json};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use colloquy_protocol::Sender;

use crate::{
    auth::AuthUser,
    error::{ApiJson, ApiPath, AppError},
    store::{self, Conversation, Message},
    AppState,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(switch_branch))
}

/// A message on the active path, with its alternatives.
#[derive(Serialize, ToSchema)]
pub(super) struct PathMessage {
    #[serde(flatten)]
    message: Message,
    /// Messages with the same parent, this one included (1: no alternatives).
    sibling_count: usize,
    /// This message's place among them, from 0, oldest first.
    sibling_index: usize,
    /// Their ids, oldest first: `PUT .../active` with one shows its branch.
    sibling_ids: Vec<Uuid>,
}

/// A conversation with a page of its active path.
#[derive(Serialize, ToSchema)]
pub(super) struct ConversationWithMessages {
    #[serde(flatten)]
    conversation: Conversation,
    /// The newest messages of the active path before the requested
    /// position, oldest first, each reply right after its question.
    messages: Vec<PathMessage>,
    /// The tool calls of the replies on this page (`message_id` names the
    /// reply), each as its `tool` events show it.
    tool_calls: Vec<serde_json::Value>,
    /// Older messages exist: ask again with `before=next_before`.
    has_more: bool,
    next_before: Option<u64>,
}

/// `conversation` with the newest `limit` messages of its active path
/// before path position `before`.
pub(super) async fn path_page(
    state: &AppState,
    conversation: Conversation,
    before: Option<u64>,
    limit: u32,
) -> Result<ConversationWithMessages, AppError> {
    let id = conversation.id;
    let page = store::active_path_page(&state.db, id, before, limit).await?;
    // Positions count from the first message: one before it, none are older.
    let has_more = page.first_position.is_some_and(|first| first > 0);
    let next_before = page.first_position.filter(|_| has_more);
    let parents: Vec<Option<Uuid>> = page.messages.iter().map(|m| m.parent_id).collect();
    let children = store::children_of(&state.db, id, &parents).await?;
    let reply_ids: Vec<Uuid> = page
        .messages
        .iter()
        .filter(|message| message.sender == Sender::Assistant)
        .map(|message| message.id)
        .collect();
    let tool_calls = store::tool_calls_of_replies(&state.db, id, &reply_ids)
        .await?
        .iter()
        .map(crate::turn::tool_call_json)
        .collect();
    let messages = page
        .messages
        .into_iter()
        .map(|message| {
            let sibling_ids = match children.get(&message.parent_id) {
                Some(siblings) if siblings.contains(&message.id) => siblings.clone(),
                _ => vec![message.id],
            };
            PathMessage {
                sibling_count: sibling_ids.len(),
                sibling_index: sibling_ids
                    .iter()
                    .position(|sibling| *sibling == message.id)
                    .unwrap_or_default(),
                sibling_ids,
                message,
            }
        })
        .collect();
    Ok(ConversationWithMessages {
        conversation,
        messages,
        tool_calls,
        has_more,
        next_before,
    })
}

#[derive(Deserialize, ToSchema)]
struct SwitchBody {
    /// Any message of the conversation (usually a `sibling_ids` entry): the
    /// active path becomes the one through it to its newest descendant.
    message_id: Uuid,
}

/// Messages per page of the answer to a switch.
const SWITCH_PAGE: u32 = 200;

/// Switch branch.
///
/// The active path becomes the one through `message_id` to its newest
/// descendant (the reply being written, for a question still unanswered).
/// New messages and what the model reads follow it. Answers with the
/// conversation and the last 200 messages of the new path, as `GET` does.
#[utoipa::path(
    put, path = "/api/conversations/{id}/active", tag = "conversations",
    params(("id" = Uuid, Path, description = "The conversation.")),
    request_body = SwitchBody,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The new active path.", body = ConversationWithMessages),
        (status = 400, description = "`invalid_json` or `invalid_path`."),
        (status = 404, description = "`not_found`: no such conversation of the caller's, or no such message in it."),
    ),
)]
async fn switch_branch(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<SwitchBody>,
) -> Result<Json<ConversationWithMessages>, AppError> {
    let conversation = store::find_conversation(&state.db, id, user.id)
        .await?
        .ok_or(AppError::NotFound("conversation"))?;
    let leaf = store::newest_leaf_under(&state.db, id, body.message_id)
        .await?
        .ok_or(AppError::NotFound("message"))?;
    store::set_active_leaf(&state.db, id, leaf).await?;
    Ok(Json(
        path_page(&state, conversation, None, SWITCH_PAGE).await?,
    ))
}
