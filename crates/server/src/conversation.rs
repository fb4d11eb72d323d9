//! Opening the conversation a socket or request asks for, with ownership
//! checks shared by every transport.

use uuid::Uuid;

use colloquy_protocol::{ConversationAction, ServerEvent};

use crate::{
    store::{self, Conversation, StoreError, User},
    AppState,
};

/// How to treat a requested id that no one owns yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IfMissing {
    /// 404: the id must already be the user's (`/api/v1/chat/ws`, `/api/messages`).
    Refuse,
    /// Create it with that id for the user (seed 001: the session id is client-chosen).
    Create,
}

/// Why a conversation could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// Absent or owned by someone else; the two are indistinguishable on purpose.
    #[error("conversation not found")]
    NotFound,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The user's conversation `requested`, or a new one when `None`.
pub async fn open(
    state: &AppState,
    user: &User,
    requested: Option<Uuid>,
    if_missing: IfMissing,
) -> Result<Conversation, OpenError> {
    let Some(id) = requested else {
        return Ok(create(state, user.id, Uuid::now_v7(), "").await?);
    };
    if let Some(conversation) = store::find_conversation(&state.db, id, user.id).await? {
        return Ok(conversation);
    }
    if if_missing == IfMissing::Refuse || store::conversation_exists(&state.db, id).await? {
        return Err(OpenError::NotFound);
    }
    match create(state, user.id, id, "").await {
        Ok(conversation) => Ok(conversation),
        // Created concurrently: by this user (open it) or another (not found).
        Err(StoreError::Conflict(_)) => store::find_conversation(&state.db, id, user.id)
            .await?
            .ok_or(OpenError::NotFound),
        Err(other) => Err(other.into()),
    }
}

/// Create a conversation and tell the user's other sockets about it.
pub async fn create(
    state: &AppState,
    user_id: Uuid,
    id: Uuid,
    title: &str,
) -> Result<Conversation, StoreError> {
    let conversation = store::create_conversation(&state.db, id, user_id, title).await?;
    announce(state, user_id, ConversationAction::Created, id, Some(title));
    Ok(conversation)
}

/// Tell every socket of `user_id` that one of its conversations changed.
pub fn announce(
    state: &AppState,
    user_id: Uuid,
    action: ConversationAction,
    id: Uuid,
    title: Option<&str>,
) {
    let event = ServerEvent::Conversation {
        action,
        conversation_id: id,
        title: title.map(str::to_owned),
    };
    state.hub.publish_to_user(user_id, event);
}
