//! The conversation as the model reads it: the system instruction, then the
//! stored messages up to the user message being answered, each earlier
//! reply preceded by the tool rounds it ran, in the provider's own shape
//! (an assistant turn with `tool_calls`, then one `tool` message per call
//! naming its `tool_call_id`), so the model knows what its tools returned
//! in earlier turns. Each message keeps its place on the path, so the turns
//! the token budget trims can be summarized ([`super::rolling`]).
//! Only the branch being answered is read: the path from the first message
//! to the question, never the alternatives beside it.

use std::collections::{BTreeMap, HashMap};

use colloquy_ai::{ChatMessage, Role, ToolCall};
use colloquy_protocol::{MessageStatus, Sender};
use serde_json::json;
use uuid::Uuid;

use crate::store::{self, Pool, StoreError, ToolCallRecord};

/// Most messages read back as history for one reply (before token trimming).
const HISTORY_MESSAGES: u32 = 200;
/// Most tool calls read back with them.
const HISTORY_TOOL_CALLS: u32 = 200;

/// A conversation as the model reads it.
pub(super) struct History {
    /// The system instruction, then the stored messages.
    pub(super) messages: Vec<ChatMessage>,
    /// The stored messages read, in path order.
    pub(super) path: Vec<Uuid>,
    /// For each message after the system instruction, the index in `path`
    /// of the stored message it is, or for a tool round, of the message
    /// before it (`None` before the first).
    pub(super) anchors: Vec<Option<usize>>,
}

/// The system instruction and the stored path up to the user message
/// `question` (failed or empty replies left out, so the model does not
/// imitate them).
pub(super) async fn load(
    db: &Pool,
    conversation_id: Uuid,
    question: Uuid,
    system_prompt: &str,
) -> Result<History, StoreError> {
    let mut stored = store::path_before(db, conversation_id, question, HISTORY_MESSAGES).await?;
    stored.retain(|message| message.status != MessageStatus::Error && !message.content.is_empty());
    // A path's seqs need not rise (a question sent while the reply before
    // it streamed has a lower seq than that reply): its tool calls are
    // those between its lowest and highest seq.
    let through = stored.iter().map(|message| message.seq).max().unwrap_or(0);
    let from = stored
        .iter()
        .map(|message| message.seq)
        .min()
        .unwrap_or(through);
    let calls =
        store::tool_calls_between(db, conversation_id, from, through, HISTORY_TOOL_CALLS).await?;
    let mut rounds = rounds_by_reply(calls);
    let mut messages = vec![ChatMessage::new(Role::System, system_prompt)];
    let mut path = Vec::with_capacity(stored.len());
    let mut anchors = Vec::with_capacity(stored.len());
    for message in stored {
        let previous = path.len().checked_sub(1);
        let this = path.len();
        match message.sender {
            Sender::User => {
                messages.push(ChatMessage::new(Role::User, message.content));
                anchors.push(Some(this));
            }
            Sender::Assistant => {
                if let Some(rounds) = rounds.remove(&message.id) {
                    for calls in rounds.into_values() {
                        let round = round_messages(calls);
                        // Trimmed alone, a round leaves its reply's text in
                        // the prompt: it counts as the turn before.
                        anchors.extend(std::iter::repeat_n(previous, round.len()));
                        messages.extend(round);
                    }
                }
                messages.push(ChatMessage::new(Role::Assistant, message.content));
                anchors.push(Some(this));
            }
            Sender::Tool => continue,
        }
        path.push(message.id);
    }
    Ok(History {
        messages,
        path,
        anchors,
    })
}

/// Calls grouped by reply, then by round, in the order they were made.
fn rounds_by_reply(
    calls: Vec<ToolCallRecord>,
) -> HashMap<Uuid, BTreeMap<u32, Vec<ToolCallRecord>>> {
    let mut rounds: HashMap<Uuid, BTreeMap<u32, Vec<ToolCallRecord>>> = HashMap::new();
    for call in calls {
        rounds
            .entry(call.reply_id)
            .or_default()
            .entry(call.round)
            .or_default()
            .push(call);
    }
    for by_round in rounds.values_mut() {
        for calls in by_round.values_mut() {
            calls.sort_by_key(|call| call.position);
        }
    }
    rounds
}

/// One round: the assistant turn that made the calls, then each result.
fn round_messages(calls: Vec<ToolCallRecord>) -> Vec<ChatMessage> {
    let made: Vec<ToolCall> = calls
        .iter()
        .map(|call| ToolCall {
            id: call.call_id.clone(),
            name: call.name.clone(),
            arguments: call.arguments.clone(),
        })
        .collect();
    let mut messages = vec![ChatMessage::tool_calls("", made)];
    messages.extend(calls.into_iter().map(|call| {
        let text = match (&call.error_code, call.result) {
            (None, Some(result)) => result,
            (code, _) => json!({ "error": {
                "code": code.clone().unwrap_or_default(),
                "message": call.error_message.unwrap_or_default(),
            }})
            .to_string(),
        };
        ChatMessage::tool_result(call.call_id, text)
    }));
    messages
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(
        reply: u128,
        round: u32,
        position: u32,
        outcome: Result<&str, &str>,
    ) -> ToolCallRecord {
        ToolCallRecord {
            id: Uuid::now_v7(),
            conversation_id: Uuid::nil(),
            reply_id: Uuid::from_u128(reply),
            round,
            position,
            call_id: format!("call_{round}_{position}"),
            name: "calculate".into(),
            arguments: "{}".into(),
            start_seq: 1,
            end_seq: Some(2),
            result: outcome.ok().map(str::to_owned),
            error_code: outcome.err().map(str::to_owned),
            error_message: outcome.err().map(|_| "failed".to_owned()),
            duration_ms: Some(1),
            created_at: chrono::Utc::now(),
        }
    }

    #[test]
    fn rounds_come_back_in_order_with_results_and_errors_as_the_model_saw_them() {
        let calls = vec![
            record(1, 1, 0, Ok("7")),
            record(1, 0, 1, Err("timeout")),
            record(1, 0, 0, Ok("42")),
        ];
        let mut rounds = rounds_by_reply(calls);
        let reply = rounds.remove(&Uuid::from_u128(1)).unwrap();
        let messages: Vec<ChatMessage> = reply.into_values().flat_map(round_messages).collect();
        let shape: Vec<(Role, usize, Option<&str>)> = messages
            .iter()
            .map(|m| (m.role, m.tool_calls.len(), m.tool_call_id.as_deref()))
            .collect();
        assert_eq!(
            shape,
            [
                (Role::Assistant, 2, None),
                (Role::Tool, 0, Some("call_0_0")),
                (Role::Tool, 0, Some("call_0_1")),
                (Role::Assistant, 1, None),
                (Role::Tool, 0, Some("call_1_0")),
            ]
        );
        assert_eq!(messages[1].content, "42");
        assert!(messages[2].content.contains("\"timeout\""));
    }
}
