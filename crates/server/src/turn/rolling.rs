//! The rolling summary: when a conversation outgrows
//! `history_budget_tokens`, the older turns the budget trims from the
//! prompt are not dropped silently but stand behind a system message
//! "Summary of the earlier conversation: …" holding the stored summary.
//!
//! A reply never waits for a summary: it uses the stored one as it is (if
//! any, and only if it summarizes the path being answered: a summary of
//! another branch would put that branch's words into this one's prompt),
//! and when trimming reached past what that one covers, a summary of this
//! path reaching the trimmed turns is made in the background after the
//! reply (with a free generation permit only), for the next replies to use.

use std::sync::Arc;

use colloquy_ai::{
    history::{estimate_tokens, trim_to_budget},
    ChatMessage, Provider, Role,
};
use tokio::sync::Semaphore;
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use tracing::Instrument;
use uuid::Uuid;

use super::summary::{self, PathEnd, SummaryLimits};
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
    /// The question answered: the end of the path the history follows.
    pub(super) question: Uuid,
    /// The stored messages of the history, in path order ([`super::history::History`]).
    pub(super) path: Vec<Uuid>,
    /// Where each history message after the system instruction is on `path`.
    pub(super) anchors: Vec<Option<usize>>,
    pub(super) budget: usize,
    /// Whether rolling summaries are enabled.
    pub(super) summaries: bool,
    /// The stored summary and how far along `path` it reaches, read the
    /// first time trimming happens (`None` inside: none, or another branch's).
    pub(super) summary: Option<Option<(StoredSummary, usize)>>,
    /// The furthest position on `path` trimmed from any prompt of the reply.
    pub(super) trimmed_through: Option<usize>,
}

impl Prompt<'_> {
    /// `messages` (the history, then the reply's own tool rounds) fitted to
    /// the budget.
    pub(super) async fn fit(&mut self, messages: &[ChatMessage]) -> Vec<ChatMessage> {
        let (mut fitted, mut trimmed) = fit(messages, &self.anchors, self.budget, None);
        if trimmed.is_some() && self.summaries {
            if self.summary.is_none() {
                self.summary = Some(self.read_summary().await);
            }
            if let Some((summary, _)) = self.summary.as_ref().and_then(Option::as_ref) {
                (fitted, trimmed) = fit(messages, &self.anchors, self.budget, Some(summary));
            }
        }
        self.trimmed_through = self.trimmed_through.max(trimmed);
        fitted
    }

    /// The stored summary, with its place on the path, when it summarizes
    /// this path.
    async fn read_summary(&self) -> Option<(StoredSummary, usize)> {
        let stored = match store::find_summary(self.db, self.conversation_id).await {
            Ok(stored) => stored?,
            Err(error) => {
                tracing::warn!(%error, "reading the rolling summary failed");
                return None;
            }
        };
        // Only a summary through one of the messages read can stand in
        // for trimmed ones; one from further back is brought forward by
        // the refresh.
        let at = self
            .path
            .iter()
            .position(|id| *id == stored.through_message_id)?;
        Some((stored, at))
    }

    /// Where a new summary should reach: the newest trimmed message, when
    /// the stored summary of this path does not cover it.
    pub(super) fn refresh_through(&self) -> Option<PathEnd> {
        let covered = self
            .summary
            .as_ref()
            .and_then(Option::as_ref)
            .map(|(_, at)| *at);
        let trimmed = self
            .trimmed_through
            .filter(|trimmed| self.summaries && covered.is_none_or(|covered| *trimmed > covered))?;
        Some(PathEnd {
            leaf: self.question,
            through: *self.path.get(trimmed)?,
        })
    }
}

/// `messages` trimmed to `budget` with `summary` (if any) placed after the
/// system instruction, and the path position of the newest stored message
/// trimmed.
fn fit(
    messages: &[ChatMessage],
    anchors: &[Option<usize>],
    budget: usize,
    summary: Option<&StoredSummary>,
) -> (Vec<ChatMessage>, Option<usize>) {
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
        .and_then(|last| anchors.get(last))
        .copied()
        .flatten();
    (fitted, trimmed)
}

/// Summarize `conversation_id` along the path to `end` in the background,
/// if a generation permit is free (a summary is worth less than a reply).
pub(super) fn refresh(
    rolling: &Rolling,
    db: Pool,
    provider: Arc<dyn Provider>,
    generations: Arc<Semaphore>,
    (conversation_id, end): (Uuid, PathEnd),
) {
    let stop = rolling.stop.clone();
    let limits = rolling.limits;
    let span = tracing::info_span!("rolling_summary", %conversation_id, through = %end.through);
    let work = async move {
        let Ok(_permit) = generations.try_acquire_owned() else {
            tracing::debug!("no free generation permit: summary left for a later reply");
            return;
        };
        let made = summary::summarize(&db, provider.as_ref(), conversation_id, end, limits);
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

    fn stored(text: &str) -> StoredSummary {
        StoredSummary {
            summary: text.into(),
            through_message_id: Uuid::nil(),
            through_seq: 2,
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
        let anchors = [Some(0), Some(1), Some(2), Some(3), Some(4)];
        let (plain, trimmed) = fit(&messages, &anchors, 60, None);
        assert_eq!(trimmed, Some(1));
        assert_eq!(plain.len(), 4);

        let (with, trimmed) = fit(&messages, &anchors, 60, Some(&stored("they met")));
        assert_eq!(trimmed, Some(1));
        assert_eq!(with[0].content, "be nice");
        assert_eq!(with[1].role, Role::System);
        assert_eq!(
            with[1].content,
            "Summary of the earlier conversation: they met"
        );
        assert_eq!(with.last().unwrap().content, "now");

        let (all, trimmed) = fit(&messages, &anchors, 10_000, None);
        assert_eq!((all.len(), trimmed), (6, None));
    }
}
