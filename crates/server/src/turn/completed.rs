//! What a finished turn leaves behind: its latencies in the `/metrics`
//! histograms, its timing row (the same one a voice pipeline adds its
//! speech figures to), and the server's own `turn_completed` analytics
//! event with the turn's timings.

use std::time::Instant;

use colloquy_protocol::MessageStatus;
use serde_json::json;
use uuid::Uuid;

use super::{clock::TurnClock, metrics::TurnMetrics};
use crate::store::{self, Pool, StoreError, TurnTiming, TEXT_TRANSPORT};

/// How a turn ended, for [`record`].
pub(super) struct Completed<'a> {
    pub(super) user_id: Uuid,
    pub(super) conversation_id: Uuid,
    pub(super) reply_id: Uuid,
    pub(super) status: MessageStatus,
    pub(super) error_code: Option<&'a str>,
    pub(super) reply_chars: usize,
    /// Tokens of every model request of the turn (its tool rounds included).
    pub(super) usage: colloquy_ai::Usage,
    /// Tool calls the model made.
    pub(super) tool_calls: usize,
}

/// Count the turn in `metrics`, store its timing row and `turn_completed`;
/// a failure is logged, never the turn's.
pub(super) async fn record(
    db: &Pool,
    metrics: &TurnMetrics,
    clock: &TurnClock,
    completed: Completed<'_>,
) {
    let now = Instant::now();
    let acked = clock.acked();
    let seconds = |at: Instant| at.saturating_duration_since(acked).as_secs_f64();
    metrics.observe(
        completed.status.as_str(),
        clock.receipt_to_ack_seconds(),
        clock.first_delta().map(seconds),
        seconds(now),
    );
    let timing = TurnTiming {
        reply_id: completed.reply_id,
        transport: TEXT_TRANSPORT.to_owned(),
        received_at: Some(clock.received_millis()),
        stored_at: clock.stored_millis(),
        speech_end_at: None,
        transcript_at: None,
        first_token_at: clock.first_delta().map(|at| clock.millis(at)),
        first_audio_at: None,
        turn_end_at: clock.millis(now),
        interrupted: completed.status == MessageStatus::Interrupted,
    };
    if let Err(error) = store::insert_turn_timing(db, completed.conversation_id, &timing).await {
        // A deleted conversation takes its timings with it; nothing to keep.
        tracing::debug!(%error, "turn timing not stored");
    }
    let millis = |at: Instant| at.saturating_duration_since(acked).as_millis() as u64;
    let properties = json!({
        "status": completed.status.as_str(),
        "error_code": completed.error_code,
        "reply_chars": completed.reply_chars,
        "prompt_tokens": completed.usage.prompt_tokens,
        "completion_tokens": completed.usage.completion_tokens,
        "tool_calls": completed.tool_calls,
        "stored_ms": clock.receipt_to_ack_seconds().map(|s| (s * 1000.0) as u64),
        "first_text_ms": clock.first_delta().map(millis),
        "total_ms": millis(now),
    });
    match store::insert_server_event(db, completed.user_id, "turn_completed", &properties).await {
        Ok(()) => {}
        // The user was deleted while the reply ran.
        Err(StoreError::NotFound) => {}
        Err(error) => tracing::warn!(%error, "recording turn_completed failed"),
    }
}
