//! Crash repair: replies a previous run left unfinished are closed at start.
//!
//! A reply's deltas are published without being stored, so after a crash
//! the database knows neither their text nor their seqs, only what the reply
//! task saved ahead of them ([`store::ReplyCheckpoint`]): a reserved seq range
//! and the text so far. The repaired reply takes a seq past that range, so
//! numbering never goes backwards for a client that saw the deltas, and
//! keeps the checkpointed text, so it does not lose what they read. A tool
//! call it left running ends with an `interrupted` error just before it,
//! so every call announced has its end.

use colloquy_protocol::{MessageStatus, Sender};

use crate::store::{self, NewMessage, Parent, Pool, StoreError, ToolCallEnd};

/// Store an `interrupted` reply for every user message a crash left
/// unanswered, so no client waits forever for it. Returns how many.
pub async fn close_orphaned_replies(db: &Pool) -> Result<usize, StoreError> {
    let orphans = store::orphaned_user_messages(db).await?;
    for user_message in &orphans {
        let Some(reply_id) = user_message.reply_id else {
            continue;
        };
        let conversation_id = user_message.conversation_id;
        let Some(highest) = store::highest_possible_seq(db, conversation_id).await? else {
            continue;
        };
        let content = store::checkpointed_text(db, reply_id)
            .await?
            .unwrap_or_default();
        let mut seq = highest;
        for call in store::unfinished_tool_calls(db, conversation_id, reply_id).await? {
            seq += 1;
            let end = ToolCallEnd {
                id: call.id,
                conversation_id,
                end_seq: seq,
                outcome: Err(("interrupted", "The server stopped while the tool ran.")),
                duration_ms: 0,
            };
            store::finish_tool_call(db, end).await?;
        }
        let reply = NewMessage {
            id: reply_id,
            conversation_id,
            sender: Sender::Assistant,
            content,
            status: MessageStatus::Interrupted,
            seq: seq + 1,
            client_id: None,
            reply_id: None,
            error_code: None,
            parent: Parent::Message(Some(user_message.id)),
            activate: None,
        };
        store::insert_message(db, reply).await?;
    }
    Ok(orphans.len())
}
