//! Storing a message and publishing its event as one step, under the
//! conversation's next seq. A write that fails for a reason that may pass
//! (the database busy or briefly unreachable) is retried with backoff before
//! the caller is told. The first message of a conversation not stored yet
//! stores the conversation with it ([`super::first`]).

use std::{sync::Arc, time::Duration};

use colloquy_protocol::{MessageStatus, Sender, ServerEvent};
use uuid::Uuid;

use super::{
    error_text,
    events::{ack_event, final_event},
    first,
};
use crate::{
    hub::{ChannelHandle, Published},
    store::{Message, MessageWriter, NewMessage, Parent, Pool, StoreError, UsageDelta},
};

/// Where messages are written: the group-commit writer, and the pool for
/// the one transaction that stores a conversation with its first message.
#[derive(Clone, Copy)]
pub(super) struct Storage<'a> {
    pub writer: &'a MessageWriter,
    pub db: &'a Pool,
}

/// Waits before each retry of a failed write: about 1.5 s in all, long
/// enough to ride out a lock or a failover, short enough that the client
/// is not left waiting.
const RETRY_BACKOFF: [Duration; 3] = [
    Duration::from_millis(100),
    Duration::from_millis(400),
    Duration::from_millis(1000),
];

/// A user message to store and acknowledge.
pub(super) struct UserMessage<'a> {
    pub id: Uuid,
    pub content: &'a str,
    pub client_id: Option<String>,
    /// The reply that will answer it (it becomes the active leaf).
    pub reply_id: Uuid,
    /// The message it follows.
    pub parent: Parent,
}

/// A finished assistant reply to store and publish as its final `message`.
pub(super) struct FinishedReply<'a> {
    pub reply_id: Uuid,
    pub content: &'a str,
    pub status: MessageStatus,
    pub error_code: Option<&'a str>,
    /// The question it answers, if any.
    pub question_id: Option<Uuid>,
    /// What the reply cost, stored with it (none: not metered here).
    pub usage: Option<UsageDelta>,
}

/// Whether a failed write may succeed if tried again.
fn is_transient(error: &StoreError) -> bool {
    matches!(error, StoreError::Database(_) | StoreError::Unavailable)
}

/// Insert `message` into `channel`'s conversation (storing the
/// conversation first if it is not yet) with `usage` in the same
/// transaction, retrying transient failures with backoff. Runs under the channel's numbering lock (inside `publish`), so
/// two first messages cannot both store the conversation.
async fn insert_with_retry(
    storage: Storage<'_>,
    channel: &ChannelHandle,
    message: NewMessage,
    usage: Option<&UsageDelta>,
) -> Result<Message, StoreError> {
    let mut waits = RETRY_BACKOFF.iter();
    loop {
        let inserted = match channel.unstored() {
            Some(unstored) => {
                first::insert(storage.db, channel, &unstored, message.clone(), usage).await
            }
            None => {
                storage
                    .writer
                    .insert_counted(message.clone(), usage.cloned())
                    .await
            }
        };
        match inserted {
            Err(error) if is_transient(&error) => match waits.next() {
                Some(wait) => {
                    tracing::warn!(%error, "storing a message failed; retrying");
                    tokio::time::sleep(*wait).await;
                }
                None => return Err(error),
            },
            result => return result,
        }
    }
}

/// Store a user message under the conversation's next seq and publish its `ack`.
pub(super) async fn publish_user_message(
    storage: Storage<'_>,
    channel: &ChannelHandle,
    message: UserMessage<'_>,
) -> Result<Arc<Published>, StoreError> {
    channel
        .publish(|seq| async move {
            let stored = insert_with_retry(
                storage,
                channel,
                NewMessage {
                    id: message.id,
                    conversation_id: channel.id,
                    sender: Sender::User,
                    content: message.content.to_owned(),
                    status: MessageStatus::Complete,
                    seq,
                    client_id: message.client_id,
                    reply_id: Some(message.reply_id),
                    error_code: None,
                    parent: message.parent,
                    activate: Some(message.reply_id),
                },
                None,
            )
            .await?;
            Ok(ack_event(&stored))
        })
        .await
}

/// Store an assistant reply under the conversation's next seq and publish
/// it as the reply's final `message`.
pub(super) async fn publish_reply(
    storage: Storage<'_>,
    channel: &ChannelHandle,
    reply: &FinishedReply<'_>,
) -> Result<Arc<Published>, StoreError> {
    channel
        .publish(|seq| async move {
            let message = insert_with_retry(
                storage,
                channel,
                NewMessage {
                    id: reply.reply_id,
                    conversation_id: channel.id,
                    sender: Sender::Assistant,
                    content: reply.content.to_owned(),
                    status: reply.status,
                    seq,
                    client_id: None,
                    reply_id: None,
                    error_code: reply.error_code.map(str::to_owned),
                    parent: match reply.question_id {
                        Some(question) => Parent::Message(Some(question)),
                        // An exchange with no words heard follows the path.
                        None => Parent::ActiveLeaf,
                    },
                    // A question made its reply the leaf when it was stored.
                    activate: reply.question_id.is_none().then_some(reply.reply_id),
                },
                reply.usage.as_ref(),
            )
            .await?;
            Ok(final_event(&message))
        })
        .await
}

/// End a reply that could not be stored: an `error` event with `code`,
/// then its final `message` (status `error`) built from memory, so every
/// client and HTTP waiter still sees the reply end. Nothing is stored.
pub(super) async fn publish_unstored_end(
    channel: &ChannelHandle,
    reply_id: Uuid,
    content: &str,
    code: &'static str,
) {
    publish_from_memory(channel, |seq| ServerEvent::Error {
        code: code.into(),
        message: error_text(code).into(),
        message_id: Some(reply_id),
        seq: Some(seq),
        client_id: None,
        quota: None,
    })
    .await;
    publish_from_memory(channel, |seq| ServerEvent::Message {
        message_id: reply_id,
        seq,
        content: content.to_owned(),
        sender: Sender::Assistant,
        status: MessageStatus::Error,
        is_final: true,
    })
    .await;
}

/// Publish an event that is not stored.
pub(super) async fn publish_from_memory(
    channel: &ChannelHandle,
    make: impl FnOnce(u64) -> ServerEvent,
) {
    let published = channel
        .publish(|seq| async move { Ok::<_, std::convert::Infallible>(make(seq)) })
        .await;
    if let Err(never) = published {
        match never {}
    }
}
