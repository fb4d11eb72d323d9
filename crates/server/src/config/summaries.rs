//! The `[summaries]` settings: conversation summaries made on request
//! (`POST /api/conversations/{id}/summary`) and the rolling summary that
//! stands in for the turns `history_budget_tokens` trims from a prompt.

use anyhow::bail;
use serde::{Deserialize, Serialize};

/// Summaries (`[summaries]`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct SummariesConfig {
    /// Summaries one user may request per hour (each is a model call).
    pub per_hour_per_user: u32,
    /// Longest summary kept, in characters; the model is asked for less.
    pub max_chars: usize,
    /// Replace the turns trimmed from a long conversation's prompt with a
    /// summary of them, refreshed in the background after a reply.
    pub rolling: bool,
}

impl Default for SummariesConfig {
    fn default() -> Self {
        Self {
            per_hour_per_user: 30,
            max_chars: 1500,
            rolling: true,
        }
    }
}

impl SummariesConfig {
    /// Check the settings.
    pub(super) fn validate(&self) -> anyhow::Result<()> {
        if self.per_hour_per_user == 0 || !(100..=20_000).contains(&self.max_chars) {
            bail!("invalid configuration: summaries.per_hour_per_user must be greater than 0 and summaries.max_chars between 100 and 20000");
        }
        Ok(())
    }

    /// Tokens the model may spend on a summary: about four characters each,
    /// with room to finish a sentence before the cut.
    pub fn max_tokens(&self) -> u32 {
        u32::try_from(self.max_chars / 3).unwrap_or(u32::MAX)
    }
}
