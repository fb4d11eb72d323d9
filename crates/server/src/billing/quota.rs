//! The daily quota check every turn passes before anything is stored or
//! generated, on every transport: the plan must allow the model, and
//! today's replies, tokens (and, for a voice turn, voice seconds) must be
//! under the plan's limits. A turn that would go over is refused whole;
//! the one that reaches a limit still runs (its tokens are only known at
//! its end), so a day's use can pass a token limit by at most one reply.

use chrono::{DateTime, SecondsFormat, Utc};
use colloquy_protocol::{QuotaDetails, ServerEvent};
use serde::Serialize;
use uuid::Uuid;

use super::{Billing, CurrentPlan};
use crate::{
    config::PlanConfig,
    store::{self, StoreError, UsageCounts},
};

/// What a refused turn tells the client (the WS `error` event's fields and
/// the HTTP 429 body's, next to `code: "quota_exceeded"`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct QuotaExceeded {
    /// The user's plan.
    pub plan: String,
    /// The limit reached: `messages_per_day`, `tokens_per_day` or
    /// `voice_seconds_per_day`.
    pub limit: &'static str,
    /// That limit's value.
    pub max: u64,
    /// How much of it today's use has taken.
    pub used: u64,
    /// The next UTC midnight, when the quota starts again.
    pub resets_at: DateTime<Utc>,
    /// Always true: a bigger plan would allow the turn.
    pub upgrade: bool,
}

impl QuotaExceeded {
    /// The message shown with it.
    pub const MESSAGE: &'static str =
        "You have reached your plan's daily limit. It resets at midnight UTC, or upgrade for more.";

    /// As the fields of a socket's `error` event.
    pub fn details(&self) -> QuotaDetails {
        QuotaDetails {
            plan: self.plan.clone(),
            limit: self.limit.to_owned(),
            max: self.max,
            used: self.used,
            resets_at: self.resets_at.to_rfc3339_opts(SecondsFormat::Secs, true),
            upgrade: self.upgrade,
        }
    }

    /// The socket `error` event refusing the `text` event sent with `client_id`.
    pub fn event(&self, client_id: Option<String>) -> ServerEvent {
        ServerEvent::Error {
            code: "quota_exceeded".into(),
            message: Self::MESSAGE.into(),
            message_id: None,
            seq: None,
            client_id,
            quota: Some(Box::new(self.details())),
        }
    }
}

/// Why a turn may not run.
#[derive(Debug, thiserror::Error)]
pub enum QuotaError {
    #[error("you have reached your plan's daily limit ({})", .0.limit)]
    Exceeded(Box<QuotaExceeded>),
    #[error("the model `{model}` is not included in your plan `{plan}`")]
    ModelNotInPlan { plan: String, model: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Today's use measured against each limit of a plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Allowance {
    pub used: u64,
    /// `None`: unlimited.
    pub max: Option<u64>,
    /// `None`: unlimited.
    pub left: Option<u64>,
}

impl Allowance {
    fn new(used: i64, max: Option<u64>) -> Self {
        let used = u64::try_from(used).unwrap_or(0);
        Self {
            used,
            max,
            left: max.map(|max| max.saturating_sub(used)),
        }
    }

    fn spent(&self) -> bool {
        self.left == Some(0)
    }
}

/// Today's use of each limit of a plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Allowances {
    pub messages: Allowance,
    pub tokens: Allowance,
    pub voice_seconds: Allowance,
}

impl Allowances {
    /// `used` (today's usage) against `limits`. Voice counts in whole
    /// seconds, rounded down, so a part-second left is still usable.
    pub fn of(limits: &PlanConfig, used: &UsageCounts) -> Self {
        Self {
            messages: Allowance::new(used.messages, limits.messages_per_day),
            tokens: Allowance::new(used.tokens(), limits.tokens_per_day),
            voice_seconds: Allowance::new(used.voice_ms() / 1000, limits.voice_seconds_per_day),
        }
    }

    /// The first limit that is spent, by name (voice only for a voice turn).
    fn spent(&self, voice: bool) -> Option<(&'static str, &Allowance)> {
        [
            ("messages_per_day", &self.messages, true),
            ("tokens_per_day", &self.tokens, true),
            ("voice_seconds_per_day", &self.voice_seconds, voice),
        ]
        .into_iter()
        .find(|(_, allowance, applies)| *applies && allowance.spent())
        .map(|(name, allowance, _)| (name, allowance))
    }
}

impl Billing {
    /// Today's usage of `user_id`, all models.
    pub async fn used_today(&self, user_id: Uuid) -> Result<UsageCounts, StoreError> {
        store::usage_on_day(&self.db, user_id, &self.today().to_string()).await
    }

    /// May `user_id` start a turn with `model` (`voice`: a spoken turn)?
    /// Their plan, or why not.
    pub async fn check(
        &self,
        user_id: Uuid,
        model: &str,
        voice: bool,
    ) -> Result<CurrentPlan, QuotaError> {
        let plan = self.plan_of(user_id).await?.ok_or(StoreError::NotFound)?;
        if !plan.limits.allows_model(model) {
            return Err(QuotaError::ModelNotInPlan {
                plan: plan.name,
                model: model.to_owned(),
            });
        }
        let used = self.used_today(user_id).await?;
        if let Some((limit, allowance)) = Allowances::of(&plan.limits, &used).spent(voice) {
            return Err(QuotaError::Exceeded(Box::new(QuotaExceeded {
                plan: plan.name,
                limit,
                max: allowance.max.unwrap_or_default(),
                used: allowance.used,
                resets_at: self.resets_at(),
                upgrade: true,
            })));
        }
        Ok(plan)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spent_limit_is_named_and_voice_counts_only_for_voice_turns() {
        let limits = PlanConfig {
            messages_per_day: Some(3),
            tokens_per_day: None,
            voice_seconds_per_day: Some(10),
            models: None,
        };
        let mut used = UsageCounts {
            messages: 2,
            prompt_tokens: 1_000_000,
            voice_ms_in: 10_500,
            ..UsageCounts::default()
        };
        let allowances = Allowances::of(&limits, &used);
        assert_eq!(allowances.messages.left, Some(1));
        assert_eq!(allowances.tokens.left, None);
        assert_eq!(allowances.spent(false), None);
        assert_eq!(
            allowances.spent(true).map(|s| s.0),
            Some("voice_seconds_per_day")
        );
        used.messages = 3;
        let allowances = Allowances::of(&limits, &used);
        assert_eq!(
            allowances.spent(false).map(|s| s.0),
            Some("messages_per_day")
        );
    }
}
