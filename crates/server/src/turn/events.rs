//! The events a turn publishes, built from stored messages: the `ack` of a
//! user message, a reply's final `message`, and the replay of stored
//! messages to a client that resumes from before them.

use colloquy_protocol::{MessageStatus, Sender, ServerEvent};
use uuid::Uuid;

use super::error_text;
use crate::store::{self, Pool, StoreError};

pub(super) fn ack_event(message: &store::Message) -> ServerEvent {
    ServerEvent::Ack {
        client_id: message.client_id.clone(),
        message_id: message.id,
        seq: message.seq,
        content: message.content.clone(),
        reply_id: message.reply_id.unwrap_or(message.id),
    }
}

/// The events that stored messages after `after` were published as: the
/// `ack` of each user message; for each reply its `error` event (if it
/// failed) and its final `message`, which supersedes its deltas.
pub async fn stored_events(
    db: &Pool,
    conversation_id: Uuid,
    after: u64,
    limit: usize,
) -> Result<Vec<ServerEvent>, StoreError> {
    let messages = store::messages_after(db, conversation_id, after, limit).await?;
    let mut events = Vec::with_capacity(messages.len());
    for message in &messages {
        match (message.sender, &message.error_code) {
            (Sender::User, _) => events.push(ack_event(message)),
            (_, Some(code)) if message.status == MessageStatus::Error => {
                events.push(ServerEvent::Error {
                    code: code.clone(),
                    message: error_text(code).into(),
                    message_id: Some(message.id),
                    seq: Some(message.seq.saturating_sub(1)),
                    client_id: None,
                });
                events.push(final_event(message));
            }
            _ => events.push(final_event(message)),
        }
    }
    Ok(events)
}

/// The final `message` event of a stored reply.
pub fn final_event(message: &store::Message) -> ServerEvent {
    ServerEvent::Message {
        message_id: message.id,
        seq: message.seq,
        content: message.content.clone(),
        sender: message.sender,
        status: message.status,
        is_final: true,
    }
}
