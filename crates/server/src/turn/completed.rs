//! The server's own `turn_completed` analytics event, with the turn's
//! timings: from the message being accepted to the first text and to the
//! final reply.

use std::{sync::OnceLock, time::Instant};

use colloquy_protocol::MessageStatus;
use serde_json::json;
use uuid::Uuid;

use super::metrics::TurnMetrics;
use crate::store::{self, Pool, StoreError};

/// When a turn's stages happened.
#[derive(Debug)]
pub(super) struct TurnClock {
    accepted: Instant,
    first_delta: OnceLock<Instant>,
}

impl TurnClock {
    /// A turn whose message was accepted now.
    pub(super) fn start() -> Self {
        Self {
            accepted: Instant::now(),
            first_delta: OnceLock::new(),
        }
    }

    /// Note the first text of the reply (later calls do nothing).
    pub(super) fn delta(&self) {
        self.first_delta.get_or_init(Instant::now);
    }
}

/// How a turn ended, for [`record`].
pub(super) struct Completed<'a> {
    pub(super) user_id: Uuid,
    pub(super) status: MessageStatus,
    pub(super) error_code: Option<&'a str>,
    pub(super) reply_chars: usize,
    /// Tokens of every model request of the turn (its tool rounds included).
    pub(super) usage: colloquy_ai::Usage,
    /// Tool calls the model made.
    pub(super) tool_calls: usize,
}

/// Count the turn in `metrics` and store `turn_completed` for it; a
/// failure is logged, never the turn's.
pub(super) async fn record(
    db: &Pool,
    metrics: &TurnMetrics,
    clock: &TurnClock,
    completed: Completed<'_>,
) {
    let now = Instant::now();
    let seconds = |at: Instant| at.duration_since(clock.accepted).as_secs_f64();
    metrics.observe(
        completed.status.as_str(),
        clock.first_delta.get().copied().map(seconds),
        seconds(now),
    );
    let millis = |at: Instant| at.duration_since(clock.accepted).as_millis() as u64;
    let properties = json!({
        "status": completed.status.as_str(),
        "error_code": completed.error_code,
        "reply_chars": completed.reply_chars,
        "prompt_tokens": completed.usage.prompt_tokens,
        "completion_tokens": completed.usage.completion_tokens,
        "tool_calls": completed.tool_calls,
        "first_text_ms": clock.first_delta.get().copied().map(millis),
        "total_ms": millis(now),
    });
    match store::insert_server_event(db, completed.user_id, "turn_completed", &properties).await {
        Ok(()) => {}
        // The user was deleted while the reply ran.
        Err(StoreError::NotFound) => {}
        Err(error) => tracing::warn!(%error, "recording turn_completed failed"),
    }
}
