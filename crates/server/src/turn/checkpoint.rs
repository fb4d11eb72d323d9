//! Crash consistency of a streaming reply. Deltas are published without
//! being stored, so before one goes out under a seq the database has not
//! reserved, a range of [`SEQ_RESERVATION`] seqs is reserved durably; and
//! the reply's text is saved at most `reply_checkpoint_ms` after it grew.
//! After a crash, [`super::close_orphaned_replies`] numbers the repaired
//! reply past the reservation and gives it the saved text.

use std::time::Duration;

use tokio::time::Instant;
use uuid::Uuid;

use crate::{
    hub::ChannelHandle,
    store::{MessageWriter, ReplyCheckpoint, StoreError},
};

/// Seqs reserved at once: one durable write covers this many events.
pub(super) const SEQ_RESERVATION: u64 = 64;

/// When a reply's text was last saved, and whether it has grown since.
pub(super) struct Checkpoints {
    interval: Duration,
    last_saved: Instant,
    dirty: bool,
}

impl Checkpoints {
    pub(super) fn new(interval: Duration) -> Self {
        Self {
            interval,
            last_saved: Instant::now(),
            dirty: false,
        }
    }

    /// Whether the text should be saved with the next delta.
    pub(super) fn due(&self) -> bool {
        self.last_saved.elapsed() >= self.interval
    }

    /// When unsaved text must be saved even if no delta comes.
    pub(super) fn deadline(&self) -> Option<Instant> {
        self.dirty.then_some(self.last_saved + self.interval)
    }

    pub(super) fn saved(&mut self) {
        self.last_saved = Instant::now();
        self.dirty = false;
    }

    pub(super) fn grew(&mut self) {
        self.dirty = true;
    }
}

/// Save `content` as the reply's text and reserve seqs through
/// `reserve_through`. Failing is logged and reported as `false`: the reply
/// goes on, with the crash repair knowing less.
pub(super) async fn save(
    writer: &MessageWriter,
    channel: &ChannelHandle,
    reply_id: Uuid,
    content: &str,
    reserve_through: u64,
) -> bool {
    let checkpoint = ReplyCheckpoint {
        reply_id,
        conversation_id: channel.id,
        content: content.to_owned(),
        reserve_through,
    };
    match writer.checkpoint(checkpoint).await {
        Ok(()) => {
            channel.reserve_through(reserve_through);
            true
        }
        Err(StoreError::NotFound) => false,
        Err(error) => {
            tracing::warn!(%error, "saving a reply checkpoint failed");
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn unsaved_text_has_a_deadline_one_interval_after_the_last_save() {
        let mut checkpoints = Checkpoints::new(Duration::from_millis(500));
        assert_eq!(checkpoints.deadline(), None, "nothing to save yet");
        assert!(!checkpoints.due());
        checkpoints.grew();
        let deadline = checkpoints.deadline().expect("grown text has a deadline");
        tokio::time::advance(Duration::from_millis(500)).await;
        assert!(checkpoints.due());
        assert!(Instant::now() >= deadline);
        checkpoints.saved();
        assert_eq!(checkpoints.deadline(), None);
        assert!(!checkpoints.due());
    }
}
