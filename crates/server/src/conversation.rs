//! Opening the conversation a socket or request asks for, with ownership
//! checks shared by every transport.

use uuid::Uuid;

use crate::{
    input::Title,
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
    let untitled = Title::parse("").map_err(|_| OpenError::NotFound)?;
    let Some(id) = requested else {
        return Ok(store::create_conversation(
            &state.db,
            Uuid::now_v7(),
            user.id,
            untitled.as_str(),
        )
        .await?);
    };
    if let Some(conversation) = store::find_conversation(&state.db, id, user.id).await? {
        return Ok(conversation);
    }
    if if_missing == IfMissing::Refuse || store::conversation_exists(&state.db, id).await? {
        return Err(OpenError::NotFound);
    }
    match store::create_conversation(&state.db, id, user.id, untitled.as_str()).await {
        Ok(conversation) => Ok(conversation),
        // Created concurrently: by this user (open it) or another (not found).
        Err(StoreError::Conflict(_)) => store::find_conversation(&state.db, id, user.id)
            .await?
            .ok_or(OpenError::NotFound),
        Err(other) => Err(other.into()),
    }
}
