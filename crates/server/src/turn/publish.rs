//! Storing a message and publishing its event as one step, under the
//! conversation's next seq.

use std::sync::Arc;

use colloquy_protocol::{MessageStatus, Sender};
use uuid::Uuid;

use super::events::{ack_event, final_event};
use crate::{
    hub::{ChannelHandle, Published},
    store::{MessageWriter, NewMessage, StoreError},
};

/// Store a user message answered by `reply_id` under the conversation's
/// next seq and publish its `ack`.
pub(super) async fn publish_user_message(
    writer: &MessageWriter,
    channel: &ChannelHandle,
    id: Uuid,
    content: &str,
    client_id: Option<String>,
    reply_id: Uuid,
) -> Result<Arc<Published>, StoreError> {
    channel
        .publish(|seq| async move {
            let stored = writer
                .insert(NewMessage {
                    id,
                    conversation_id: channel.id,
                    sender: Sender::User,
                    content: content.to_owned(),
                    status: MessageStatus::Complete,
                    seq,
                    client_id,
                    reply_id: Some(reply_id),
                    error_code: None,
                })
                .await?;
            Ok(ack_event(&stored))
        })
        .await
}

/// Store an assistant reply under the conversation's next seq and publish
/// it as the reply's final `message`.
pub(super) async fn publish_reply(
    writer: &MessageWriter,
    channel: &ChannelHandle,
    reply_id: Uuid,
    content: &str,
    status: MessageStatus,
    error_code: Option<&str>,
) -> Result<Arc<Published>, StoreError> {
    channel
        .publish(|seq| async move {
            let message = writer
                .insert(NewMessage {
                    id: reply_id,
                    conversation_id: channel.id,
                    sender: Sender::Assistant,
                    content: content.to_owned(),
                    status,
                    seq,
                    client_id: None,
                    reply_id: None,
                    error_code: error_code.map(str::to_owned),
                })
                .await?;
            Ok(final_event(&message))
        })
        .await
}
