//! When a turn's stages happened: the user message received by the turn
//! service, stored and acknowledged, the reply's first text, and its end.
//! Monotonic instants measure the latencies (`/metrics`, `turn_completed`);
//! one wall-clock reading taken on receipt dates them for the stored
//! timing row, so a clock step mid-turn cannot reorder them.

use std::{sync::OnceLock, time::Instant};

use crate::store::now_millis;

/// The moments of one turn, noted as they happen.
#[derive(Debug)]
pub(super) struct TurnClock {
    received: Instant,
    /// `received` in epoch milliseconds.
    received_millis: i64,
    stored: OnceLock<Instant>,
    first_delta: OnceLock<Instant>,
}

impl TurnClock {
    /// A turn whose message was received now.
    pub(super) fn start() -> Self {
        Self {
            received: Instant::now(),
            received_millis: now_millis(),
            stored: OnceLock::new(),
            first_delta: OnceLock::new(),
        }
    }

    /// Note the user message stored and acknowledged (later calls do nothing).
    pub(super) fn stored(&self) {
        self.stored.get_or_init(Instant::now);
    }

    /// Note the first text of the reply (later calls do nothing).
    pub(super) fn delta(&self) {
        self.first_delta.get_or_init(Instant::now);
    }

    /// When the message was acknowledged, the origin of the reply latencies
    /// (receipt, for a turn never noted as stored).
    pub(super) fn acked(&self) -> Instant {
        self.stored.get().copied().unwrap_or(self.received)
    }

    /// When the reply's first text was published, if it had any.
    pub(super) fn first_delta(&self) -> Option<Instant> {
        self.first_delta.get().copied()
    }

    /// Seconds from receipt to the ack, once stored.
    pub(super) fn receipt_to_ack_seconds(&self) -> Option<f64> {
        self.stored
            .get()
            .map(|at| at.duration_since(self.received).as_secs_f64())
    }

    /// `at` in epoch milliseconds.
    pub(super) fn millis(&self, at: Instant) -> i64 {
        let since = at.saturating_duration_since(self.received).as_millis();
        self.received_millis
            .saturating_add(i64::try_from(since).unwrap_or(i64::MAX))
    }

    /// The receipt in epoch milliseconds.
    pub(super) fn received_millis(&self) -> i64 {
        self.received_millis
    }

    /// The ack in epoch milliseconds, once stored.
    pub(super) fn stored_millis(&self) -> Option<i64> {
        self.stored.get().map(|at| self.millis(*at))
    }
}
