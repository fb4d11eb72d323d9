//! What the listener has heard of a spoken reply.
//!
//! Audio is sent paced to real time with a small lead, so the server can
//! tell how much of it has been played: everything sent, minus what is still
//! buffered at the client. The reply's clauses are laid out on the audio
//! timeline, which turns a played duration back into text for barge-in
//! (whole clauses, then words pro rata within the clause being spoken).

use std::time::Duration;

use tokio::time::Instant;

/// One synthesized clause on the reply's audio timeline, in milliseconds.
#[derive(Debug, Clone, PartialEq)]
struct SpokenClause {
    text: String,
    start_ms: u64,
    end_ms: u64,
}

/// The audio timeline of one reply and the client's play position.
#[derive(Debug, Default)]
pub struct Playback {
    clauses: Vec<SpokenClause>,
    /// Milliseconds of audio sent to the client.
    sent_ms: f64,
    /// When the client will have played everything sent (None before the first send).
    playhead_end: Option<Instant>,
}

impl Playback {
    /// Lays a synthesized clause of `duration_ms` after the previous ones.
    pub fn add_clause(&mut self, text: String, duration_ms: u64) {
        let start_ms = self.clauses.last().map_or(0, |c| c.end_ms);
        self.clauses.push(SpokenClause {
            text,
            start_ms,
            end_ms: start_ms + duration_ms,
        });
    }

    /// Records that `duration` more audio was sent at `now`. A client plays
    /// sends back to back, starting again at `now` after a gap.
    pub fn sent(&mut self, duration: Duration, now: Instant) {
        let start = self.playhead_end.map_or(now, |end| end.max(now));
        self.playhead_end = Some(start + duration);
        self.sent_ms += duration.as_secs_f64() * 1000.0;
    }

    /// Whether the client still has audio to play at `now`.
    pub fn is_playing(&self, now: Instant) -> bool {
        self.playhead_end.is_some_and(|end| end > now)
    }

    /// When the next chunk should be sent to keep `lead` of audio buffered
    /// at the client (`now` if it is already due).
    pub fn next_send_at(&self, lead: Duration) -> Option<Instant> {
        self.playhead_end
            .map(|end| end.checked_sub(lead).unwrap_or(end))
    }

    /// When the client finishes playing what was sent.
    pub fn playhead_end(&self) -> Option<Instant> {
        self.playhead_end
    }

    /// Milliseconds of the reply the listener has heard by `now`.
    pub fn heard_ms(&self, now: Instant) -> u64 {
        let buffered = self.playhead_end.map_or(0.0, |end| {
            end.saturating_duration_since(now).as_secs_f64() * 1000.0
        });
        (self.sent_ms - buffered).max(0.0) as u64
    }

    /// The text heard in the first `heard_ms` of audio: whole clauses, then
    /// the words of the clause being spoken in proportion to its elapsed time.
    pub fn heard_text(&self, heard_ms: u64) -> String {
        let mut parts: Vec<String> = Vec::new();
        for clause in &self.clauses {
            if clause.end_ms <= heard_ms {
                parts.push(clause.text.clone());
                continue;
            }
            if clause.start_ms < heard_ms {
                let words: Vec<&str> = clause.text.split_whitespace().collect();
                let fraction = (heard_ms - clause.start_ms) as f64
                    / (clause.end_ms - clause.start_ms).max(1) as f64;
                let count = (words.len() as f64 * fraction).floor() as usize;
                if count > 0 {
                    parts.push(words[..count].join(" "));
                }
            }
            break;
        }
        parts.join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timeline() -> Playback {
        let mut playback = Playback::default();
        playback.add_clause("Hello there.".into(), 1000);
        playback.add_clause("How are you doing today?".into(), 2000);
        playback
    }

    #[test]
    fn heard_text_takes_whole_clauses_then_words_pro_rata() {
        let playback = timeline();
        assert_eq!(playback.heard_text(0), "");
        assert_eq!(playback.heard_text(999), "Hello");
        assert_eq!(playback.heard_text(1000), "Hello there.");
        // Half of the second clause: 2 of its 5 words (floor of 2.5).
        assert_eq!(playback.heard_text(2000), "Hello there. How are");
        assert_eq!(
            playback.heard_text(10_000),
            "Hello there. How are you doing today?"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn heard_time_excludes_audio_still_buffered_at_the_client() {
        let mut playback = timeline();
        let start = Instant::now();
        playback.sent(Duration::from_millis(500), start);
        assert_eq!(playback.heard_ms(start), 0);
        assert!(playback.is_playing(start));
        tokio::time::advance(Duration::from_millis(300)).await;
        assert_eq!(playback.heard_ms(Instant::now()), 300);
        // The next send is due when only the lead is left buffered.
        assert_eq!(
            playback.next_send_at(Duration::from_millis(200)),
            Some(start + Duration::from_millis(300))
        );
        tokio::time::advance(Duration::from_millis(1000)).await;
        assert_eq!(playback.heard_ms(Instant::now()), 500);
        assert!(!playback.is_playing(Instant::now()));
        // After a gap, playback restarts at the new send.
        let now = Instant::now();
        playback.sent(Duration::from_millis(100), now);
        assert_eq!(playback.heard_ms(now), 500);
        assert_eq!(
            playback.playhead_end(),
            Some(now + Duration::from_millis(100))
        );
    }
}
