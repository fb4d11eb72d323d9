//! Opening the conversation a socket or request asks for, with ownership
//! checks shared by every transport.
//!
//! A new conversation is not stored when it is opened, only with its first
//! accepted message (`turn::publish`): a socket opened and closed, a mic
//! pressed in silence or a refused text leave nothing behind. Until then it
//! lives in its hub channel, and its id stays reserved for its user: ids the
//! server hands out say whom they belong to ([`issued`]), and a client-chosen
//! id (seed 001's `/v2/chat/{session_id}`) is held by whoever's channel has
//! it in memory (see `Hub::claim`), then by whoever stores a message in it.

pub mod issued;

use uuid::Uuid;

use colloquy_protocol::{ConversationAction, ServerEvent};

use self::issued::Issued;
use crate::{
    hub::{ChannelHandle, Unstored},
    store::{self, Conversation, StoreError, User},
    AppState,
};

/// How to treat a requested id that names no stored conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IfMissing {
    /// 404 unless the server issued the id to the user (`/api/v1/chat/ws`,
    /// `/api/messages`): a conversation not stored yet, still empty.
    Refuse,
    /// Open it for the user, to be stored with its first message, unless
    /// someone else holds it (seed 001: the session id is client-chosen).
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

/// The channel of the user's conversation `requested`, or of a new one
/// (not stored until its first message) when `None`.
pub async fn open(
    state: &AppState,
    user: &User,
    requested: Option<Uuid>,
    if_missing: IfMissing,
) -> Result<ChannelHandle, OpenError> {
    let Some(id) = requested else {
        let id = issued::issue(&state.tokens, user.id);
        return claim(state, id, user.id);
    };
    if let Some(conversation) = store::find_conversation(&state.db, id, user.id).await? {
        return Ok(stored(state, &conversation));
    }
    let reserved = match issued::check(&state.tokens, id, user.id) {
        Issued::ToCaller => true,
        Issued::ToSomeoneElse => false,
        Issued::NotIssued => if_missing == IfMissing::Create,
    };
    if !reserved {
        return Err(OpenError::NotFound);
    }
    if store::conversation_exists(&state.db, id).await? {
        // Stored since the lookup above (by the user: open it), or someone else's.
        return match store::find_conversation(&state.db, id, user.id).await? {
            Some(conversation) => Ok(stored(state, &conversation)),
            None => Err(OpenError::NotFound),
        };
    }
    claim(state, id, user.id)
}

fn stored(state: &AppState, conversation: &Conversation) -> ChannelHandle {
    state
        .hub
        .channel(conversation.id, conversation.user_id, conversation.last_seq)
}

/// A not yet stored conversation's channel; someone else holding the id is "not found".
fn claim(state: &AppState, id: Uuid, owner: Uuid) -> Result<ChannelHandle, OpenError> {
    state
        .hub
        .claim(id, owner, Unstored::default())
        .ok_or(OpenError::NotFound)
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
    state
        .hub
        .publish_to_user(user_id, changed(action, id, title));
}

/// The `conversation` event telling a user's sockets that `id` changed.
pub fn changed(action: ConversationAction, id: Uuid, title: Option<&str>) -> ServerEvent {
    ServerEvent::Conversation {
        action,
        conversation_id: id,
        title: title.map(str::to_owned),
    }
}
