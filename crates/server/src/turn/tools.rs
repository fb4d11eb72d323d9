//! One round of the agent loop's tool calls: every call the model made in
//! one response is announced (`tool` `start`, stored first), then all of
//! them run at once, each ending (`tool` `end`, stored first) as soon as it
//! finishes. The results go back to the model as `tool` messages in the
//! order it made the calls. Cancelling the reply (stop, barge-in, shutdown)
//! drops the calls still running and ends each with a `cancelled` error,
//! so every `start` a client saw has its `end`.

use std::time::Instant;

use colloquy_ai::{ChatMessage, ToolCall};
use colloquy_protocol::ServerEvent;
use futures::{stream::FuturesUnordered, StreamExt};
use serde_json::json;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::events::{tool_end, tool_start_event};
use crate::{
    hub::ChannelHandle,
    store::{self, Pool, ToolCallEnd, ToolCallRecord},
    tools::{ToolContext, ToolFailure, ToolOutput, ToolRegistry},
};

/// Where a round of calls runs.
pub(super) struct ToolRound<'a> {
    pub db: &'a Pool,
    pub channel: &'a ChannelHandle,
    pub registry: &'a ToolRegistry,
    pub reply_id: Uuid,
    /// Which response of the reply made the calls (0 for the first).
    pub round: u32,
    pub cancel: &'a CancellationToken,
}

/// The reply was cancelled while its tools ran.
#[derive(Debug)]
pub(super) struct Cancelled;

/// What one call came to, as the model reads it.
fn model_text(outcome: &Result<ToolOutput, ToolFailure>) -> String {
    match outcome {
        Ok(output) => output.json.clone(),
        Err(failure) => {
            json!({ "error": { "code": failure.code, "message": failure.message } }).to_string()
        }
    }
}

impl ToolRound<'_> {
    /// Run `calls`; the tool results for the model, in call order, or
    /// [`Cancelled`].
    pub(super) async fn run(&self, calls: &[ToolCall]) -> Result<Vec<ChatMessage>, Cancelled> {
        let mut records = Vec::with_capacity(calls.len());
        for (position, call) in calls.iter().enumerate() {
            tracing::debug!(tool = %call.name, arguments = %call.arguments, "tool call");
            records.push(self.start(position as u32, call).await);
        }
        let context = ToolContext {
            db: self.db.clone(),
            user_id: self.channel.owner,
            conversation_id: self.channel.id,
            call_id: String::new(),
        };
        let mut outcomes: Vec<Option<Result<ToolOutput, ToolFailure>>> = vec![None; calls.len()];
        let mut running: FuturesUnordered<_> = calls
            .iter()
            .enumerate()
            .map(|(index, call)| {
                let context = ToolContext {
                    call_id: call.id.clone(),
                    ..context.clone()
                };
                async move {
                    let started = Instant::now();
                    let outcome = self.registry.call(&context, call).await;
                    (index, outcome, started.elapsed())
                }
            })
            .collect();
        loop {
            let finished = tokio::select! {
                biased;
                () = self.cancel.cancelled() => None,
                finished = running.next() => match finished {
                    Some(finished) => Some(finished),
                    None => break,
                },
            };
            let Some((index, outcome, elapsed)) = finished else {
                // Dropping the futures stops the calls still running.
                drop(running);
                for (index, record) in records.iter_mut().enumerate() {
                    if outcomes[index].is_none() {
                        let cancelled = ToolFailure::new("cancelled", "The reply was stopped.");
                        self.end(record, &Err(cancelled), 0).await;
                    }
                }
                return Err(Cancelled);
            };
            let duration_ms = u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX);
            if let Err(failure) = &outcome {
                tracing::debug!(tool = %calls[index].name, code = %failure.code, "tool call failed");
            }
            self.end(&mut records[index], &outcome, duration_ms).await;
            outcomes[index] = Some(outcome);
        }
        Ok(calls
            .iter()
            .zip(outcomes)
            .map(|(call, outcome)| {
                let text = outcome.as_ref().map_or_else(String::new, model_text);
                ChatMessage::tool_result(call.id.clone(), text)
            })
            .collect())
    }

    /// Store and publish the `start` of a call. A call that cannot be
    /// stored still runs and is announced: the reply goes on, and only a
    /// resume from storage would miss it.
    async fn start(&self, position: u32, call: &ToolCall) -> ToolCallRecord {
        let mut record = ToolCallRecord {
            id: Uuid::now_v7(),
            conversation_id: self.channel.id,
            reply_id: self.reply_id,
            round: self.round,
            position,
            call_id: call.id.clone(),
            name: call.name.clone(),
            arguments: call.arguments.clone(),
            start_seq: 0,
            end_seq: None,
            result: None,
            error_code: None,
            error_message: None,
            duration_ms: None,
            created_at: chrono::Utc::now(),
        };
        let db = self.db;
        let started = &mut record;
        let published = self
            .channel
            .publish(|seq| async move {
                started.start_seq = seq;
                if let Err(error) = store::insert_tool_call(db, started).await {
                    tracing::error!(%error, "storing a tool call failed");
                }
                Ok::<ServerEvent, std::convert::Infallible>(tool_start_event(started))
            })
            .await;
        if let Err(never) = published {
            match never {}
        }
        record
    }

    /// Store and publish how a call ended (published even if it cannot be
    /// stored, so no client waits for it).
    async fn end(
        &self,
        record: &mut ToolCallRecord,
        outcome: &Result<ToolOutput, ToolFailure>,
        duration_ms: u64,
    ) {
        let db = self.db;
        let published = self
            .channel
            .publish(|seq| async move {
                match outcome {
                    Ok(output) => record.result = Some(output.json.clone()),
                    Err(failure) => {
                        record.error_code = Some(failure.code.clone());
                        record.error_message = Some(failure.message.clone());
                    }
                }
                record.end_seq = Some(seq);
                record.duration_ms = Some(duration_ms);
                let end = ToolCallEnd {
                    id: record.id,
                    conversation_id: record.conversation_id,
                    end_seq: seq,
                    outcome: match outcome {
                        Ok(output) => Ok(output.json.as_str()),
                        Err(failure) => Err((failure.code.as_str(), failure.message.as_str())),
                    },
                    duration_ms,
                };
                if let Err(error) = store::finish_tool_call(db, end).await {
                    tracing::error!(%error, "storing a tool call's end failed");
                }
                Ok::<ServerEvent, std::convert::Infallible>(tool_end(record, seq))
            })
            .await;
        if let Err(never) = published {
            match never {}
        }
    }
}
