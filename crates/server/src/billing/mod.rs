//! Plans, quotas and usage metering. [`Billing`] knows the configured
//! plans and the server's clock: it tells which plan a user is on
//! ([`Billing::plan_of`]), refuses a turn over its plan's daily quota
//! before anything is generated ([`Billing::check`], see [`quota`]), and
//! dates the usage a reply stores with it. Days are UTC days.

pub mod metrics;
pub mod quota;

use std::{collections::BTreeMap, sync::Arc};

use chrono::{DateTime, Days, NaiveDate, Utc};
use serde::Serialize;
use uuid::Uuid;

use crate::{
    config::{Config, PlanConfig},
    store::{self, Pool, StoreError, UsageDelta},
    streak::Clock,
};

pub use quota::{QuotaError, QuotaExceeded};

/// Subscription statuses that grant their plan; any other (`canceled`,
/// `unpaid`, `incomplete`, ...) falls back to the default plan.
const GRANTING_STATUSES: [&str; 3] = ["active", "trialing", "past_due"];

/// The plan a user is on now, with its limits.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct CurrentPlan {
    /// The plan's name in the configuration.
    pub name: String,
    /// `active` for a paid plan in good standing; `default` when the user
    /// has no plan of their own (the default or anonymous plan).
    pub status: String,
    /// When a paid plan renews (or ends, with `cancel_at_period_end`).
    pub renews_at: Option<DateTime<Utc>>,
    pub cancel_at_period_end: bool,
    /// The plan's daily limits and models.
    #[serde(skip)]
    pub limits: PlanConfig,
}

/// Plans, quotas and the usage clock; one per server, cheap to clone.
#[derive(Clone)]
pub struct Billing {
    db: Pool,
    plans: Arc<BTreeMap<String, PlanConfig>>,
    default_plan: String,
    anonymous_plan: String,
    /// The server's clock (shared with streaks): tests move days with it.
    pub clock: Clock,
    /// Usage counters by model, for `/metrics`.
    pub metrics: Arc<metrics::UsageMetrics>,
}

impl Billing {
    /// Plans as configured, days by `clock`.
    pub fn new(db: Pool, config: &Config, clock: Clock) -> Self {
        Self {
            db,
            plans: Arc::new(config.effective_plans()),
            default_plan: config.default_plan.clone(),
            anonymous_plan: config.anonymous_plan.clone(),
            clock,
            metrics: Arc::default(),
        }
    }

    /// Today, in UTC.
    pub fn today(&self) -> NaiveDate {
        self.clock.now().date_naive()
    }

    /// When today's quotas start again: the next UTC midnight.
    pub fn resets_at(&self) -> DateTime<Utc> {
        let today = self.today();
        let tomorrow = today.checked_add_days(Days::new(1)).unwrap_or(today);
        tomorrow.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc()
    }

    /// The limits of plan `name`, if it is configured.
    pub fn plan(&self, name: &str) -> Option<&PlanConfig> {
        self.plans.get(name)
    }

    /// The plan `user_id` is on: their own if billing set one that is in
    /// good standing and still configured, else the anonymous plan for a
    /// guest and the default plan for everyone else. `None`: no such user.
    pub async fn plan_of(&self, user_id: Uuid) -> Result<Option<CurrentPlan>, StoreError> {
        let Some(user) = store::find_user(&self.db, user_id).await? else {
            return Ok(None);
        };
        if let Some(row) = store::find_user_plan(&self.db, user_id).await? {
            let granted = GRANTING_STATUSES.contains(&row.status.as_str());
            match self.plans.get(&row.plan) {
                Some(limits) if granted => {
                    return Ok(Some(CurrentPlan {
                        name: row.plan,
                        status: row.status,
                        renews_at: row.renews_at,
                        cancel_at_period_end: row.cancel_at_period_end,
                        limits: limits.clone(),
                    }))
                }
                Some(_) => {}
                None => {
                    tracing::warn!(plan = %row.plan, "a user's plan is not configured; using the default plan");
                }
            }
        }
        let name = if user.is_anonymous {
            &self.anonymous_plan
        } else {
            &self.default_plan
        };
        Ok(Some(CurrentPlan {
            name: name.clone(),
            status: "default".into(),
            renews_at: None,
            cancel_at_period_end: false,
            // Validated at start: the default and anonymous plans exist.
            limits: self.plans.get(name).cloned().unwrap_or_default(),
        }))
    }

    /// The usage of one reply of `user_id` with `model`, dated today:
    /// one message, and whatever else the caller fills in.
    pub fn reply_usage(&self, user_id: Uuid, model: &str) -> UsageDelta {
        UsageDelta {
            user_id,
            day: self.today().to_string(),
            model: model.to_owned(),
            messages: 1,
            ..UsageDelta::default()
        }
    }

    /// Add usage that is not part of a stored reply (speech played after
    /// its reply was stored), and count it in `/metrics`.
    pub async fn add(&self, delta: &UsageDelta) -> Result<(), StoreError> {
        store::add_usage(&self.db, delta).await?;
        self.metrics.count(delta);
        Ok(())
    }

    /// Meter one completion that is no stored reply (`/v1/chat/completions`)
    /// with its tokens (reported by its provider, or estimated). A failure
    /// is logged: the completion was already answered.
    pub async fn record_completion(&self, user_id: Uuid, model: &str, tokens: colloquy_ai::Usage) {
        let usage = UsageDelta {
            prompt_tokens: i64::from(tokens.prompt_tokens),
            completion_tokens: i64::from(tokens.completion_tokens),
            ..self.reply_usage(user_id, model)
        };
        if let Err(error) = self.add(&usage).await {
            tracing::warn!(%error, "metering a completion failed");
        }
    }
}
