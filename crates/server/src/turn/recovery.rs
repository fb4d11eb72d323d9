//! Crash repair: replies a previous run left unfinished are closed at start.

use colloquy_protocol::{MessageStatus, Sender};

use crate::store::{self, NewMessage, Pool, StoreError};

/// Store an empty `interrupted` reply for every user message a crash left
/// unanswered, so no client waits forever for it. Returns how many.
pub async fn close_orphaned_replies(db: &Pool) -> Result<usize, StoreError> {
    let orphans = store::orphaned_user_messages(db).await?;
    for user_message in &orphans {
        let Some(reply_id) = user_message.reply_id else {
            continue;
        };
        let conversation_id = user_message.conversation_id;
        let Some(last_seq) = store::conversation_last_seq(db, conversation_id).await? else {
            continue;
        };
        let reply = NewMessage {
            id: reply_id,
            conversation_id,
            sender: Sender::Assistant,
            content: String::new(),
            status: MessageStatus::Interrupted,
            seq: last_seq + 1,
            client_id: None,
            reply_id: None,
            error_code: None,
        };
        store::insert_message(db, reply).await?;
    }
    Ok(orphans.len())
}
