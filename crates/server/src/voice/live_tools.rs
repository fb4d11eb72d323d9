//! The tool calls a Gemini Live session asked for, running while the
//! session goes on: each is a task (stored, announced with `tool` events by
//! the turn service) whose result goes back to Gemini, and each can be
//! cancelled by its id, as `toolCallCancellation` asks.

use std::collections::HashMap;

use colloquy_ai::{LiveToolResult, ToolCall};
use tokio::{sync::mpsc, task::JoinSet};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::{hub::ChannelHandle, turn::LiveToolCall, AppState};

/// Tool results on their way to Gemini; a result waits for room (its call
/// task holds it), it is never dropped.
pub(super) const TOOL_RESULTS_CAPACITY: usize = 16;

/// The tool calls running for the session, each cancellable by its id.
pub(super) struct RunningCalls {
    tasks: JoinSet<String>,
    tokens: HashMap<String, CancellationToken>,
    results: mpsc::Sender<LiveToolResult>,
}

impl RunningCalls {
    pub(super) fn new(results: mpsc::Sender<LiveToolResult>) -> Self {
        Self {
            tasks: JoinSet::new(),
            tokens: HashMap::new(),
            results,
        }
    }

    /// Start `calls` for reply `reply_id`, whose earlier calls numbered
    /// `first_round`; how many were started.
    pub(super) fn start(
        &mut self,
        state: &AppState,
        channel: &ChannelHandle,
        reply_id: Uuid,
        first_round: u32,
        calls: Vec<ToolCall>,
    ) -> u32 {
        let mut round = first_round;
        for call in calls {
            let cancel = state.turns.live_tool_token();
            // A repeated id replaces (and cancels) the older call.
            if let Some(older) = self.tokens.insert(call.id.clone(), cancel.clone()) {
                older.cancel();
            }
            let job = LiveToolCall {
                channel: channel.clone(),
                reply_id,
                round,
                call: call.clone(),
                cancel,
            };
            round += 1;
            let run = state.turns.run_live_tool_call(job);
            let results = self.results.clone();
            self.tasks.spawn(async move {
                if let Some(text) = run.await {
                    // The session may have ended meanwhile: nothing to tell.
                    let _ = results
                        .send(LiveToolResult::from_json_text(&call, &text))
                        .await;
                }
                call.id
            });
        }
        round - first_round
    }

    /// Whether any call is running.
    pub(super) fn is_running(&self) -> bool {
        !self.tasks.is_empty()
    }

    /// Wait for the next call to end (forever when none runs).
    pub(super) async fn next_finished(&mut self) {
        match self.tasks.join_next().await {
            Some(Ok(id)) => {
                self.tokens.remove(&id);
            }
            Some(Err(error)) => tracing::error!(%error, "a Gemini Live tool call task failed"),
            None => std::future::pending().await,
        }
    }

    /// Gemini no longer wants these calls.
    pub(super) fn cancel(&mut self, ids: &[String]) {
        for id in ids {
            if let Some(token) = self.tokens.remove(id) {
                token.cancel();
            }
        }
    }

    /// Cancel every call and wait until each has published its end.
    pub(super) async fn stop(mut self) {
        for token in self.tokens.values() {
            token.cancel();
        }
        while self.tasks.join_next().await.is_some() {}
    }
}
