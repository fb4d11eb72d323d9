//! Turn timings (seed 000): when the user stopped speaking, when the
//! transcript was ready, the first reply token, the first reply audio and
//! the end of the turn. Each voice turn stores one row (see
//! [`store::insert_turn_timing`]), readable over HTTP, and feeds the latency
//! histograms of the `/metrics` endpoint.

use std::sync::Arc;

use prometheus_client::{
    encoding::text::encode_registry,
    metrics::{counter::Counter, histogram::Histogram},
    registry::Registry,
};
use tokio::time::Instant;
use uuid::Uuid;

use crate::store::{self, now_millis, Pool, TurnTiming};

/// The moments of one turn, as they happen.
#[derive(Debug, Clone)]
pub struct TurnTimer {
    pub reply_id: Uuid,
    pub speech_end: Option<Instant>,
    pub transcript: Option<Instant>,
    pub first_token: Option<Instant>,
    pub first_audio: Option<Instant>,
    pub interrupted: bool,
}

impl TurnTimer {
    /// A turn answering `reply_id`, with what is known so far.
    pub fn new(reply_id: Uuid, speech_end: Option<Instant>, transcript: Option<Instant>) -> Self {
        Self {
            reply_id,
            speech_end,
            transcript,
            first_token: None,
            first_audio: None,
            interrupted: false,
        }
    }
}

/// Converts monotonic instants to wall-clock milliseconds.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    instant: Instant,
    millis: i64,
}

impl Clock {
    /// Anchored at now.
    pub fn now() -> Self {
        Self {
            instant: Instant::now(),
            millis: now_millis(),
        }
    }

    /// `at` in epoch milliseconds.
    pub fn millis(&self, at: Instant) -> i64 {
        if at >= self.instant {
            self.millis + (at - self.instant).as_millis() as i64
        } else {
            self.millis - (self.instant - at).as_millis() as i64
        }
    }
}

/// Maps positions in a client's audio stream to instants, to timestamp the
/// end of speech. A client sending in real time keeps the origin stable; a
/// client sending a whole clip at once moves it forward, which keeps speech
/// ends from landing in the future.
#[derive(Debug, Default, Clone, Copy)]
pub struct StreamClock {
    /// The instant stream position 0 corresponds to (the latest estimate wins).
    origin: Option<Instant>,
}

impl StreamClock {
    /// Audio up to `position_ms` of the stream has been received by `now`.
    pub fn received(&mut self, position_ms: u64, now: Instant) {
        let origin = now
            .checked_sub(std::time::Duration::from_millis(position_ms))
            .unwrap_or(now);
        self.origin = Some(self.origin.map_or(origin, |o| o.max(origin)));
    }

    /// When stream position `ms` was spoken, never later than `now`.
    pub fn instant_of(&self, ms: u64, now: Instant) -> Instant {
        self.origin.map_or(now, |origin| {
            (origin + std::time::Duration::from_millis(ms)).min(now)
        })
    }
}

/// Latency histograms and counters of voice turns, exposed at `/metrics`.
pub struct VoiceMetrics {
    registry: Registry,
    transcript_seconds: Histogram,
    first_token_seconds: Histogram,
    first_audio_seconds: Histogram,
    turn_seconds: Histogram,
    turns: Counter,
    interruptions: Counter,
    speculations_used: Counter,
    speculations_discarded: Counter,
}

impl std::fmt::Debug for VoiceMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VoiceMetrics").finish_non_exhaustive()
    }
}

fn latency_buckets() -> impl Iterator<Item = f64> {
    [
        0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0,
    ]
    .into_iter()
}

impl VoiceMetrics {
    /// Empty metrics in their own registry (one per server, so tests that
    /// run several servers in one process do not share counts).
    pub fn new() -> Arc<Self> {
        let mut registry = Registry::with_prefix("colloquy_voice");
        let transcript_seconds = Histogram::new(latency_buckets());
        let first_token_seconds = Histogram::new(latency_buckets());
        let first_audio_seconds = Histogram::new(latency_buckets());
        let turn_seconds = Histogram::new(latency_buckets());
        let turns = Counter::default();
        let interruptions = Counter::default();
        let speculations_used = Counter::default();
        let speculations_discarded = Counter::default();
        registry.register(
            "speech_end_to_transcript_seconds",
            "From the end of the user's speech to the transcript",
            transcript_seconds.clone(),
        );
        registry.register(
            "speech_end_to_first_token_seconds",
            "From the end of the user's speech to the first reply token",
            first_token_seconds.clone(),
        );
        registry.register(
            "speech_end_to_first_audio_seconds",
            "From the end of the user's speech to the first reply audio sent",
            first_audio_seconds.clone(),
        );
        registry.register(
            "speech_end_to_turn_end_seconds",
            "From the end of the user's speech to the end of the reply",
            turn_seconds.clone(),
        );
        registry.register("turns", "Voice turns finished", turns.clone());
        registry.register(
            "interruptions",
            "Replies the user spoke over",
            interruptions.clone(),
        );
        registry.register(
            "stt_speculations_used",
            "Transcripts started at a pause in speech and used when it ended there",
            speculations_used.clone(),
        );
        registry.register(
            "stt_speculations_discarded",
            "Transcripts started at a pause in speech that went on",
            speculations_discarded.clone(),
        );
        Arc::new(Self {
            registry,
            transcript_seconds,
            first_token_seconds,
            first_audio_seconds,
            turn_seconds,
            turns,
            interruptions,
            speculations_used,
            speculations_discarded,
        })
    }

    /// Counts a speculative transcript as used or not.
    pub fn speculation(&self, used: bool) {
        if used {
            self.speculations_used.inc();
        } else {
            self.speculations_discarded.inc();
        }
    }

    fn observe(&self, timer: &TurnTimer, turn_end: Instant) {
        self.turns.inc();
        if timer.interrupted {
            self.interruptions.inc();
        }
        let Some(speech_end) = timer.speech_end else {
            return;
        };
        let since = |at: Option<Instant>| {
            at.map(|at| at.saturating_duration_since(speech_end).as_secs_f64())
        };
        if let Some(s) = since(timer.transcript) {
            self.transcript_seconds.observe(s);
        }
        if let Some(s) = since(timer.first_token) {
            self.first_token_seconds.observe(s);
        }
        if let Some(s) = since(timer.first_audio) {
            self.first_audio_seconds.observe(s);
        }
        if let Some(s) = since(Some(turn_end)) {
            self.turn_seconds.observe(s);
        }
    }

    /// This registry's part of the text exposition (no `# EOF`).
    pub fn render_into(&self, out: &mut String) {
        if let Err(error) = encode_registry(out, &self.registry) {
            tracing::error!(%error, "encoding metrics failed");
        }
    }
}

/// Records the timings of one session's turns: each is stored with the
/// session's conversation and counted in the metrics.
#[derive(Clone)]
pub struct TurnRecorder {
    pub db: Pool,
    pub metrics: Arc<VoiceMetrics>,
    /// Anchors stored times to the wall clock; made when the session starts.
    pub clock: Clock,
    pub conversation_id: Uuid,
    /// Stored with each timing (`voice`, `chat`).
    pub transport: &'static str,
}

impl TurnRecorder {
    /// Store a finished turn's timing and count it in the metrics.
    pub async fn record(&self, timer: &TurnTimer, turn_end: Instant) {
        self.metrics.observe(timer, turn_end);
        let at = |instant: Option<Instant>| instant.map(|i| self.clock.millis(i));
        let timing = TurnTiming {
            reply_id: timer.reply_id,
            transport: self.transport.to_owned(),
            // The turn service adds its own moments to the same row.
            received_at: None,
            stored_at: None,
            speech_end_at: at(timer.speech_end),
            transcript_at: at(timer.transcript),
            first_token_at: at(timer.first_token),
            first_audio_at: at(timer.first_audio),
            turn_end_at: self.clock.millis(turn_end),
            interrupted: timer.interrupted,
        };
        let inserted = store::insert_turn_timing(&self.db, self.conversation_id, &timing).await;
        if let Err(error) = inserted {
            // A deleted conversation takes its timings with it; nothing to keep.
            tracing::debug!(%error, "turn timing not stored");
        }
    }
}
