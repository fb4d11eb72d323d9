//! The rolling summary: when a conversation outgrows
//! `history_budget_tokens`, the older turns the budget trims from the
//! prompt are not dropped silently but stand behind a system message
//! "Summary of the earlier conversation: …" holding the stored summary.
//!
//! A reply never waits for a summary: it uses the stored one as it is (if
//! any), and when trimming reached past what that one covers, a summary
//! reaching the trimmed turns is made in the background after the reply
//! (with a free generation permit only), for the next replies to use.

use std::sync::Arc;

use colloquy_ai::{
    history::{estimate_tokens, trim_to_budget},
    ChatMessage, Provider, Role,
};
use tokio::sync::Semaphore;
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use tracing::Instrument;
use uuid::Uuid;

use super::summary::{self, SummaryLimits};
use crate::store::{self, Pool, StoredSummary};

/// What the summary's system message starts with.
pub(super) const SUMMARY_PREFIX: &str = "Summary of the earlier conversation: ";

/// Where rolling summaries are refreshed (set when they are enabled).
#[derive(Clone)]
pub(super) struct Rolling {
    /// Refreshes are tracked with the replies, so shutdown waits for them.
    pub(super) tasks: TaskTracker,
    /// Fired when the shutdown grace period ends.
    pub(super) stop: CancellationToken,
    pub(super) limits: SummaryLimits,
}

/// The prompts of one reply: its history fitted to the budget, with the
/// stored summary in place of the turns trimmed.
pub(super) struct Prompt<'a> {
    pub(super) db: &'a Pool,
    pub(super) conversation_id: Uuid,
    /// The seq of each history message after the system instruction.
    pub(super) seqs: Vec<u64>,
    pub(super) budget: usize,
    /// Whether rolling summaries are enabled.
    pub(super) summaries: bool,
    /// The stored summary, read the first time trimming happens.
    pub(super) summary: Option<Option<StoredSummary>>,
    /// The newest stored message trimmed from any prompt of the reply.
    pub(super) trimmed_through: Option<u64>,
}

impl Prompt<'_> {
    /// `messages` (the history, then the reply's own tool rounds) fitted to
    /// the budget.
    pub(super) async fn fit(&mut self, messages: &[ChatMessage]) -> Vec<ChatMessage> {
        let (mut fitted, mut trimmed) = fit(messages, &self.seqs, self.budget, None);
        if trimmed.is_some() && self.summaries {
            if self.summary.is_none() {
                let stored = store::find_summary(self.db, self.conversation_id).await;
                self.summary = Some(stored.unwrap_or_else(|error| {
                    tracing::warn!(%error, "reading the rolling summary failed");
                    None
                }));
            }
            if let Some(summary) = self.summary.as_ref().and_then(Option::as_ref) {
                (fitted, trimmed) = fit(messages, &self.seqs, self.budget, Some(summary));
            }
        }
        self.trimmed_through = self.trimmed_through.max(trimmed);
        fitted
    }

    /// The seq a new summary should reach: the newest trimmed message, when
    /// the stored summary does not cover it.
    pub(super) fn refresh_through(&self) -> Option<u64> {
        let covered = self
            .summary
            .as_ref()
            .and_then(Option::as_ref)
            .map_or(0, |summary| summary.through_seq);
        self.trimmed_through
            .filter(|trimmed| self.summaries && *trimmed > covered)
    }
}

/// `messages` trimmed to `budget` with `summary` (if any) placed after the
/// system instruction, and the seq of the newest stored message trimmed.
fn fit(
    messages: &[ChatMessage],
    seqs: &[u64],
    budget: usize,
    summary: Option<&StoredSummary>,
) -> (Vec<ChatMessage>, Option<u64>) {
    let mut prompt = messages.to_vec();
    if let Some(summary) = summary {
        let at = prompt
            .iter()
            .position(|m| m.role != Role::System)
            .unwrap_or(prompt.len());
        let text = format!("{SUMMARY_PREFIX}{}", summary.summary);
        prompt.insert(at, ChatMessage::new(Role::System, text));
    }
    let before = prompt.len();
    let fitted = trim_to_budget(prompt, budget, estimate_tokens);
    // Trimming drops the oldest messages after the system ones, never a
    // system message: the count says how far it cut.
    let dropped = before - fitted.len();
    let trimmed = dropped
        .checked_sub(1)
        .and_then(|last| seqs.get(last))
        .copied();
    (fitted, trimmed)
}

/// Summarize `conversation_id` through `through_seq` in the background,
/// if a generation permit is free (a summary is worth less than a reply).
pub(super) fn refresh(
    rolling: &Rolling,
    db: Pool,
    provider: Arc<dyn Provider>,
    generations: Arc<Semaphore>,
    (conversation_id, through_seq): (Uuid, u64),
) {
    let stop = rolling.stop.clone();
    let limits = rolling.limits;
    let span = tracing::info_span!("rolling_summary", %conversation_id, through_seq);
    let work = async move {
        let Ok(_permit) = generations.try_acquire_owned() else {
            tracing::debug!("no free generation permit: summary left for a later reply");
            return;
        };
        let made = summary::summarize(&db, provider.as_ref(), conversation_id, through_seq, limits);
        tokio::select! {
            made = made => match made {
                Ok(summary) => tracing::debug!(covered = summary.through_seq, "rolling summary stored"),
                Err(error) => tracing::info!(%error, "rolling summary not made"),
            },
            () = stop.cancelled() => {}
        }
    };
    rolling.tasks.spawn(work.instrument(span));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(text: &str, through_seq: u64) -> StoredSummary {
        StoredSummary {
            summary: text.into(),
            through_message_id: Uuid::nil(),
            through_seq,
            updated_at: chrono::Utc::now(),
        }
    }

    #[test]
    fn trimmed_turns_give_way_to_the_summary_after_the_instruction() {
        let long = "word ".repeat(80);
        let messages = vec![
            ChatMessage::new(Role::System, "be nice"),
            ChatMessage::new(Role::User, long.clone()),
            ChatMessage::new(Role::Assistant, long.clone()),
            ChatMessage::new(Role::User, "short"),
            ChatMessage::new(Role::Assistant, "reply"),
            ChatMessage::new(Role::User, "now"),
        ];
        let seqs = [1, 2, 3, 4, 5];
        let (plain, trimmed) = fit(&messages, &seqs, 60, None);
        assert_eq!(trimmed, Some(2));
        assert_eq!(plain.len(), 4);

        let (with, trimmed) = fit(&messages, &seqs, 60, Some(&stored("they met", 2)));
        assert_eq!(trimmed, Some(2));
        assert_eq!(with[0].content, "be nice");
        assert_eq!(with[1].role, Role::System);
        assert_eq!(
            with[1].content,
            "Summary of the earlier conversation: they met"
        );
        assert_eq!(with.last().unwrap().content, "now");

        let (all, trimmed) = fit(&messages, &seqs, 10_000, None);
        assert_eq!((all.len(), trimmed), (6, None));
    }
}
