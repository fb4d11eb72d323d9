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
//!
//! The repaired reply is metered like any other ([`repaired_usage`]), in
//! the transaction that stores it: a crash must not make a reply free.

use colloquy_ai::history::estimate_text_tokens;
use colloquy_protocol::{MessageStatus, Sender};

use crate::{
    billing::Billing,
    store::{self, NewMessage, Parent, Pool, StoreError, ToolCallEnd, UsageDelta},
};

/// Store an `interrupted` reply for every user message a crash left
/// unanswered, so no client waits forever for it, metered to the
/// conversation's owner as a reply of `model` (the model that wrote it is
/// not stored; the default one is the best guess). Returns how many.
pub async fn close_orphaned_replies(
    db: &Pool,
    billing: &Billing,
    model: &str,
) -> Result<usize, StoreError> {
    let orphans = store::orphaned_user_messages(db).await?;
    for user_message in &orphans {
        let Some(reply_id) = user_message.reply_id else {
            continue;
        };
        let conversation_id = user_message.conversation_id;
        let Some(highest) = store::highest_possible_seq(db, conversation_id).await? else {
            continue;
        };
        let Some(numbering) = store::numbering(db, conversation_id).await? else {
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
        let calls = store::tool_calls_of_replies(db, conversation_id, &[reply_id]).await?;
        let usage = repaired_usage(
            billing.reply_usage(numbering.owner, model),
            &user_message.content,
            &reply.content,
            calls.len(),
        );
        let mut tx = db.begin().await?;
        store::insert_message_in(&mut tx, reply).await?;
        store::add_usage(&mut *tx, &usage).await?;
        tx.commit().await?;
        billing.metrics.count(&usage);
    }
    Ok(orphans.len())
}

/// What a reply whose writer stopped cost (`base`: its user, day and
/// model), as well as it can be told: the provider's count died with it,
/// so tokens are estimated like those of a stream cut short, the prompt
/// from the question alone (at least that was sent), the completion from
/// the text its clients saw.
pub(super) fn repaired_usage(
    base: UsageDelta,
    question: &str,
    content: &str,
    tool_calls: usize,
) -> UsageDelta {
    let tokens = |count: usize| i64::try_from(count).unwrap_or(i64::MAX);
    UsageDelta {
        prompt_tokens: tokens(estimate_text_tokens(question.chars().count())),
        completion_tokens: tokens(estimate_text_tokens(content.chars().count())),
        tool_calls: i64::try_from(tool_calls).unwrap_or(i64::MAX),
        ..base
    }
}
