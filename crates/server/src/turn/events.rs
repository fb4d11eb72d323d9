//! The events a turn publishes, built from stored rows: the `ack` of a
//! user message, the `tool` events of a call, a reply's final `message`,
//! and the replay of all of them to a client that resumes from before
//! them. Live events are built by the same functions, so a replay is
//! exactly what was sent.

use colloquy_protocol::{MessageStatus, Sender, ServerEvent, ToolError, ToolEvent, ToolStatus};
use serde_json::Value;
use uuid::Uuid;

use super::error_text;
use crate::store::{self, Pool, StoreError, ToolCallRecord};

pub(super) fn ack_event(message: &store::Message) -> ServerEvent {
    ServerEvent::Ack {
        client_id: message.client_id.clone(),
        message_id: message.id,
        seq: message.seq,
        content: message.content.clone(),
        reply_id: message.reply_id.unwrap_or(message.id),
    }
}

/// The events that stored messages and tool calls after `after` were
/// published as, in seq order, at most `limit`: the `ack` of each user
/// message; the `start` and `end` of each tool call; for each reply its
/// `error` event (if it failed) and its final `message`, which supersedes
/// its deltas.
pub async fn stored_events(
    db: &Pool,
    conversation_id: Uuid,
    after: u64,
    limit: usize,
) -> Result<Vec<ServerEvent>, StoreError> {
    let messages = store::messages_after(db, conversation_id, after, limit).await?;
    let calls = store::tool_calls_after(db, conversation_id, after, limit).await?;
    let mut events = Vec::with_capacity(messages.len() + 2 * calls.len());
    for call in &calls {
        events.push(tool_start_event(call));
        events.extend(tool_end_event(call));
    }
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
                    quota: None,
                });
                events.push(final_event(message));
            }
            _ => events.push(final_event(message)),
        }
    }
    events.retain(|event| event.seq().is_some_and(|seq| seq > after));
    events.sort_by_key(ServerEvent::seq);
    events.truncate(limit);
    Ok(events)
}

/// The `start` event of a call.
pub(super) fn tool_start_event(call: &ToolCallRecord) -> ServerEvent {
    // The model's text as it was when it is not JSON: the user sees what
    // the model tried.
    let arguments = serde_json::from_str(&call.arguments)
        .unwrap_or_else(|_| Value::String(call.arguments.clone()));
    ServerEvent::Tool(Box::new(ToolEvent {
        message_id: call.reply_id,
        call_id: call.call_id.clone(),
        name: call.name.clone(),
        status: ToolStatus::Start,
        arguments: Some(arguments),
        result: None,
        error: None,
        duration_ms: None,
        seq: call.start_seq,
    }))
}

/// The `end` event of a call that ended, if it did.
pub(super) fn tool_end_event(call: &ToolCallRecord) -> Option<ServerEvent> {
    call.end_seq.map(|seq| tool_end(call, seq))
}

/// The `end` event of a call, under `seq`.
pub(super) fn tool_end(call: &ToolCallRecord, seq: u64) -> ServerEvent {
    let error = call.error_code.as_ref().map(|code| ToolError {
        code: code.clone(),
        message: call.error_message.clone().unwrap_or_default(),
    });
    let result = match (&error, &call.result) {
        (None, Some(text)) => {
            Some(serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.clone())))
        }
        _ => None,
    };
    ServerEvent::Tool(Box::new(ToolEvent {
        message_id: call.reply_id,
        call_id: call.call_id.clone(),
        name: call.name.clone(),
        status: ToolStatus::End,
        arguments: None,
        result,
        error,
        duration_ms: Some(call.duration_ms.unwrap_or_default()),
        seq,
    }))
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

/// A stored call as the HTTP API shows it: the fields of its `tool` events
/// (`status` is `end` once it ended), and the reply and round it belongs to.
pub fn tool_call_json(call: &ToolCallRecord) -> Value {
    let mut json = serde_json::to_value(tool_start_event(call)).unwrap_or_default();
    if let Some(end) = tool_end_event(call) {
        if let Ok(Value::Object(fields)) = serde_json::to_value(end) {
            for (key, value) in fields {
                if key != "arguments" {
                    json[key] = value;
                }
            }
        }
    }
    if let Value::Object(fields) = &mut json {
        fields.remove("type");
        fields.remove("seq");
        fields.insert("round".into(), Value::from(call.round));
    }
    json
}
