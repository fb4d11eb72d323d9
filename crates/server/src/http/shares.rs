//! Read-only share links (seed 000's "sharing", as Open WebUI and LibreChat
//! do it): the owner shares a snapshot of a conversation as it is now under
//! an unguessable id; anyone with the link reads it without signing in and
//! learns nothing about the owner; a signed-in reader can fork it into a
//! conversation of their own. Sharing again issues a new link and the old
//! one stops working; so does revoking, or deleting the conversation.
//! A snapshot keeps the tool calls of its replies (name, arguments, result
//! or error), as the owner saw them in the chat.

use std::collections::HashMap;

use axum::{extract::State, http::StatusCode, Json};
use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use colloquy_protocol::{MessageStatus, Sender};
use rand::{rngs::OsRng, RngCore};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use crate::{
    auth::AuthUser,
    client_ip::ClientIp,
    conversation,
    error::{ApiPath, AppError},
    store::{self, Message, NewMessage, Parent},
    AppState,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(share, revoke))
        .routes(routes!(read))
        .routes(routes!(fork))
}

/// Most messages a snapshot keeps (the newest ones).
pub const MAX_SHARED_MESSAGES: u32 = 1000;
/// Random bytes in a share id: 128 bits, as unguessable as a v4 UUID.
const SHARE_ID_BYTES: usize = 16;

/// One message of a snapshot: what a reader sees, nothing about who.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
struct SharedMessage {
    sender: Sender,
    content: String,
    created_at: chrono::DateTime<chrono::Utc>,
    /// The tools the assistant called while writing this reply, in the
    /// order it called them (absent when it called none).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    tool_calls: Vec<SharedToolCall>,
}

/// A tool call of a shared reply: what was called with what, and what came
/// back; no ids.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
struct SharedToolCall {
    name: String,
    /// The arguments (the model's text as a string when it was not JSON).
    arguments: serde_json::Value,
    /// What the tool returned, when it succeeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    result: Option<serde_json::Value>,
    /// Why it failed, when it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    error: Option<SharedToolError>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
struct SharedToolError {
    code: String,
    message: String,
}

impl SharedToolCall {
    fn of(call: &store::ToolCallRecord) -> Self {
        // As the `tool` events show it: text that is not JSON stays text.
        let json = |text: &str| {
            serde_json::from_str(text).unwrap_or_else(|_| serde_json::Value::String(text.into()))
        };
        let error = call.error_code.as_ref().map(|code| SharedToolError {
            code: code.clone(),
            message: call.error_message.clone().unwrap_or_default(),
        });
        Self {
            name: call.name.clone(),
            arguments: json(&call.arguments),
            result: call.result.as_deref().filter(|_| error.is_none()).map(json),
            error,
        }
    }
}

/// A new share link.
#[derive(Serialize, ToSchema)]
struct ShareCreated {
    /// At least 128 random bits, URL-safe.
    share_id: String,
    /// The read-only page, `/s/{share_id}`.
    url: String,
    created_at: chrono::DateTime<chrono::Utc>,
}

/// A shared snapshot as anyone with the link reads it.
#[derive(Serialize, ToSchema)]
struct SharedConversation {
    share_id: String,
    title: String,
    created_at: chrono::DateTime<chrono::Utc>,
    messages: Vec<SharedMessage>,
}

/// The caller's copy of a shared conversation.
#[derive(Serialize, ToSchema)]
struct Forked {
    conversation_id: Uuid,
    title: String,
}

fn new_share_id() -> String {
    let mut bytes = [0u8; SHARE_ID_BYTES];
    OsRng.fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Where the read-only page of a share is served.
fn share_path(id: &str) -> String {
    format!("/s/{id}")
}

fn rate_limited(retry_after: std::time::Duration) -> AppError {
    AppError::TooManyRequests {
        message: "too many share links; try again later",
        retry_after,
    }
}

/// Share a snapshot of a conversation as it is now.
///
/// Under a new unguessable id; the previous link of this conversation stops
/// working. Rate-limited per user.
#[utoipa::path(
    post, path = "/api/conversations/{id}/share", tag = "shares",
    params(("id" = Uuid, Path, description = "The conversation.")),
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Shared.", body = ShareCreated),
        (status = 404, description = "`not_found`: no such conversation of the caller's."),
        (status = 429, description = "`rate_limited`: too many share links."),
    ),
)]
async fn share(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<(StatusCode, Json<ShareCreated>), AppError> {
    let conversation = store::find_conversation(&state.db, id, user.id)
        .await?
        .ok_or(AppError::NotFound("conversation"))?;
    state.limits.check_share(user.id).map_err(rate_limited)?;
    let page = store::active_path_page(&state.db, id, None, MAX_SHARED_MESSAGES).await?;
    let shared: Vec<Message> = page.messages.into_iter().filter(worth_sharing).collect();
    let replies: Vec<Uuid> = shared
        .iter()
        .filter(|message| message.sender == Sender::Assistant)
        .map(|message| message.id)
        .collect();
    let mut calls: HashMap<Uuid, Vec<SharedToolCall>> = HashMap::new();
    // By reply, each reply's in the order the model made them.
    for call in store::tool_calls_of_replies(&state.db, id, &replies).await? {
        calls
            .entry(call.reply_id)
            .or_default()
            .push(SharedToolCall::of(&call));
    }
    let messages: Vec<SharedMessage> = shared
        .into_iter()
        .map(|message| SharedMessage {
            tool_calls: calls.remove(&message.id).unwrap_or_default(),
            sender: message.sender,
            content: message.content,
            created_at: message.created_at,
        })
        .collect();
    let snapshot = serde_json::to_string(&messages)
        .map_err(|e| AppError::Internal(anyhow::anyhow!("snapshot: {e}")))?;
    let share_id = new_share_id();
    let share = store::create_share(
        &state.db,
        &share_id,
        id,
        user.id,
        &conversation.title,
        &snapshot,
    )
    .await?;
    record(&state, user.id, "conversation_shared", messages.len()).await;
    Ok((
        StatusCode::CREATED,
        Json(ShareCreated {
            url: share_path(&share.id),
            share_id: share.id,
            created_at: share.created_at,
        }),
    ))
}

/// What a snapshot keeps: what was said, not failures or empty replies.
fn worth_sharing(message: &Message) -> bool {
    matches!(message.sender, Sender::User | Sender::Assistant)
        && message.status != MessageStatus::Error
        && !message.content.is_empty()
}

/// Revoke a conversation's share link.
///
/// Afterwards the link answers 404.
#[utoipa::path(
    delete, path = "/api/conversations/{id}/share", tag = "shares",
    params(("id" = Uuid, Path, description = "The conversation.")),
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Revoked (or there was no link)."),
        (status = 404, description = "`not_found`: no such conversation of the caller's."),
    ),
)]
async fn revoke(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<StatusCode, AppError> {
    if store::find_conversation(&state.db, id, user.id)
        .await?
        .is_none()
    {
        return Err(AppError::NotFound("conversation"));
    }
    store::delete_share(&state.db, id, user.id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A share id as given: anything else is simply not found.
fn plausible_share_id(id: &str) -> bool {
    id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

async fn load(
    state: &AppState,
    share_id: &str,
) -> Result<(store::Share, Vec<SharedMessage>), AppError> {
    if !plausible_share_id(share_id) {
        return Err(AppError::NotFound("shared conversation"));
    }
    let share = store::find_share(&state.db, share_id)
        .await?
        .ok_or(AppError::NotFound("shared conversation"))?;
    let messages: Vec<SharedMessage> = serde_json::from_str(&share.messages)
        .map_err(|e| AppError::Internal(anyhow::anyhow!("stored snapshot: {e}")))?;
    Ok((share, messages))
}

/// Read a shared conversation.
///
/// No token needed; nothing about the owner is returned. Rate-limited per
/// client address.
#[utoipa::path(
    get, path = "/api/shared/{share_id}", tag = "shares",
    params(("share_id" = String, Path, description = "The id from the share link.")),
    responses(
        (status = 200, description = "The snapshot.", body = SharedConversation),
        (status = 404, description = "`not_found`: no such link, or it was revoked."),
        (status = 429, description = "`rate_limited`: too many reads from this address."),
    ),
)]
async fn read(
    State(state): State<AppState>,
    client: ClientIp,
    ApiPath(share_id): ApiPath<String>,
) -> Result<Json<SharedConversation>, AppError> {
    state
        .limits
        .check_shared_read(client.rate_key())
        .map_err(|retry_after| AppError::TooManyRequests {
            message: "too many shared conversations read from this address; try again later",
            retry_after,
        })?;
    let (share, messages) = load(&state, &share_id).await?;
    Ok(Json(SharedConversation {
        share_id: share.id,
        title: share.title,
        created_at: share.created_at,
        messages,
    }))
}

/// Copy a shared conversation into the caller's own.
#[utoipa::path(
    post, path = "/api/shared/{share_id}/fork", tag = "shares",
    params(("share_id" = String, Path, description = "The id from the share link.")),
    security(("bearer" = [])),
    responses(
        (status = 201, description = "The caller's new conversation.", body = Forked),
        (status = 404, description = "`not_found`: no such link, or it was revoked."),
        (status = 429, description = "`rate_limited`: too many forks."),
    ),
)]
async fn fork(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    ApiPath(share_id): ApiPath<String>,
) -> Result<(StatusCode, Json<Forked>), AppError> {
    state.limits.check_share(user.id).map_err(rate_limited)?;
    let (share, messages) = load(&state, &share_id).await?;
    let id = Uuid::now_v7();
    conversation::create(&state, user.id, id, &share.title).await?;
    for (index, message) in messages.iter().enumerate() {
        let copy_id = Uuid::now_v7();
        // Each copy follows the one before: the snapshot's path.
        let copy = NewMessage {
            id: copy_id,
            conversation_id: id,
            sender: message.sender,
            content: message.content.clone(),
            status: MessageStatus::Complete,
            seq: index as u64 + 1,
            client_id: None,
            reply_id: None,
            error_code: None,
            parent: Parent::ActiveLeaf,
            activate: Some(copy_id),
        };
        store::insert_message(&state.db, copy).await?;
    }
    record(&state, user.id, "conversation_forked", messages.len()).await;
    Ok((
        StatusCode::CREATED,
        Json(Forked {
            conversation_id: id,
            title: share.title,
        }),
    ))
}

/// The server's analytics event for a share or a fork; never fails the request.
async fn record(state: &AppState, user_id: Uuid, name: &str, messages: usize) {
    let properties = json!({ "messages": messages });
    if let Err(error) = store::insert_server_event(&state.db, user_id, name, &properties).await {
        tracing::warn!(%error, name, "recording an analytics event failed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn share_ids_are_128_random_bits_in_url_safe_text() {
        let a = new_share_id();
        let b = new_share_id();
        assert_ne!(a, b);
        assert_eq!(URL_SAFE_NO_PAD.decode(&a).unwrap().len(), 16);
        assert!(plausible_share_id(&a), "{a}");
        assert!(!plausible_share_id("../../etc"));
        assert!(!plausible_share_id(&"a".repeat(65)));
    }
}
