//! The first message of a conversation not stored yet: the conversation is
//! stored with it, in one transaction, so a conversation exists exactly
//! when something was said in it (a refused or failed first message leaves
//! nothing behind), and the user's sockets are told it was created once.

use colloquy_protocol::ConversationAction;

use crate::{
    conversation,
    hub::{ChannelHandle, Unstored},
    store::{self, Message, NewMessage, Pool, StoreError, UsageDelta},
};

/// Store `channel`'s conversation as `unstored` describes, then `message`
/// in it; on success the channel counts as stored and the owner's sockets
/// get `conversation` `created` (with the title the message gave it).
/// Bypasses the group-commit writer: it happens once per conversation.
pub(super) async fn insert(
    db: &Pool,
    channel: &ChannelHandle,
    unstored: &Unstored,
    message: NewMessage,
    usage: Option<&UsageDelta>,
) -> Result<Message, StoreError> {
    let (id, owner) = (channel.id, channel.owner);
    let mut tx = db.begin().await?;
    match store::create_conversation(&mut *tx, id, owner, &unstored.title).await {
        Ok(_) => {}
        // Someone stored this id first (a client-chosen id, taken while our
        // channel was not in memory): this channel's numbering is not theirs.
        Err(StoreError::Conflict(_)) => {
            tracing::warn!(conversation_id = %id, "conversation id taken before its first message");
            return Err(StoreError::NotFound);
        }
        Err(other) => return Err(other),
    }
    if let Some(step_id) = unstored.step_id {
        store::attach_step(&mut *tx, id, step_id).await?;
    }
    let stored = store::insert_message_in(&mut tx, message).await?;
    if let Some(usage) = usage {
        store::add_usage(&mut *tx, usage).await?;
    }
    let title = store::find_conversation(&mut *tx, id, owner)
        .await?
        .map(|conversation| conversation.title)
        .unwrap_or_default();
    tx.commit().await?;
    channel.mark_stored();
    channel.tell_owner(conversation::changed(
        ConversationAction::Created,
        id,
        Some(&title),
    ));
    Ok(stored)
}
