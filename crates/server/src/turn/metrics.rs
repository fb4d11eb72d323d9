//! Latency of every turn, whatever its transport, for `/metrics`: from the
//! message received to it stored (its ack), from the ack to the reply's
//! first text and to its end, and how turns ended. Voice turns also have their speech-based figures
//! (`voice::timings`).

use prometheus_client::{
    encoding::{text::encode_registry, EncodeLabelSet},
    metrics::{counter::Counter, family::Family, histogram::Histogram},
    registry::Registry,
};

/// A turn's ending, as a label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Ending {
    status: String,
}

/// The histograms and counters of all turns.
pub struct TurnMetrics {
    registry: Registry,
    stored_seconds: Histogram,
    first_text_seconds: Histogram,
    turn_seconds: Histogram,
    turns: Family<Ending, Counter>,
}

impl std::fmt::Debug for TurnMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TurnMetrics").finish_non_exhaustive()
    }
}

fn buckets() -> impl Iterator<Item = f64> {
    [
        0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 30.0, 60.0,
    ]
    .into_iter()
}

impl Default for TurnMetrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("colloquy_turn");
        let stored_seconds = Histogram::new(buckets());
        let first_text_seconds = Histogram::new(buckets());
        let turn_seconds = Histogram::new(buckets());
        let turns = Family::<Ending, Counter>::default();
        registry.register(
            "received_to_stored_seconds",
            "From a message reaching the turn service to it stored and acknowledged",
            stored_seconds.clone(),
        );
        registry.register(
            "ack_to_first_text_seconds",
            "From a message's ack to the first text of its reply, every transport",
            first_text_seconds.clone(),
        );
        registry.register(
            "ack_to_end_seconds",
            "From a message's ack to the end of its reply, every transport",
            turn_seconds.clone(),
        );
        registry.register("turns", "Replies finished, by status", turns.clone());
        Self {
            registry,
            stored_seconds,
            first_text_seconds,
            turn_seconds,
            turns,
        }
    }
}

impl TurnMetrics {
    /// Count one finished reply, in seconds: `stored` from receipt to ack,
    /// `first_text` and `total` from the ack (`None`: it had none).
    pub fn observe(&self, status: &str, stored: Option<f64>, first_text: Option<f64>, total: f64) {
        self.turns
            .get_or_create(&Ending {
                status: status.to_owned(),
            })
            .inc();
        if let Some(stored) = stored {
            self.stored_seconds.observe(stored);
        }
        if let Some(first_text) = first_text {
            self.first_text_seconds.observe(first_text);
        }
        self.turn_seconds.observe(total);
    }

    /// This registry's part of the text exposition (no `# EOF`).
    pub fn render_into(&self, out: &mut String) {
        if let Err(error) = encode_registry(out, &self.registry) {
            tracing::error!(%error, "encoding turn metrics failed");
        }
    }
}
