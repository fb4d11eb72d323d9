//! The `[billing]` settings: Stripe's API, which price pays for which plan,
//! where Checkout sends the user back, and the webhook's timestamp
//! tolerance. The two Stripe secrets come only from the environment
//! (`STRIPE_API_KEY`, `STRIPE_WEBHOOK_SECRET`) and are never printed.

use std::collections::BTreeMap;

use anyhow::bail;
use serde::{Deserialize, Serialize};

/// Stripe billing (`[billing]`).
#[derive(Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct BillingConfig {
    /// Stripe's API base URL (a fake Stripe server in tests).
    pub stripe_api_base: String,
    /// The Stripe price id of each plan sold (`[billing.prices]`, `pro =
    /// "price_..."`): what checkout charges, and how a subscription's price
    /// names its plan.
    pub prices: BTreeMap<String, String>,
    /// Where Stripe Checkout returns the user after paying.
    pub success_url: Option<String>,
    /// Where Stripe Checkout returns the user who gave up.
    pub cancel_url: Option<String>,
    /// Webhooks signed longer ago (or further ahead) than this are refused.
    pub webhook_tolerance_secs: u64,
    /// Longest a call to Stripe's API may take.
    pub stripe_timeout_ms: u64,
    /// `STRIPE_API_KEY` (environment only).
    #[serde(skip)]
    pub stripe_api_key: Option<String>,
    /// `STRIPE_WEBHOOK_SECRET` (environment only).
    #[serde(skip)]
    pub stripe_webhook_secret: Option<String>,
}

impl Default for BillingConfig {
    fn default() -> Self {
        Self {
            stripe_api_base: "https://api.stripe.com".into(),
            prices: BTreeMap::new(),
            success_url: None,
            cancel_url: None,
            webhook_tolerance_secs: 300,
            stripe_timeout_ms: 10_000,
            stripe_api_key: None,
            stripe_webhook_secret: None,
        }
    }
}

// By hand, so the Stripe secrets never reach a log.
impl std::fmt::Debug for BillingConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let redacted = |secret: &Option<String>| secret.as_ref().map(|_| "<redacted>");
        f.debug_struct("BillingConfig")
            .field("stripe_api_base", &self.stripe_api_base)
            .field("prices", &self.prices)
            .field("success_url", &self.success_url)
            .field("cancel_url", &self.cancel_url)
            .field("webhook_tolerance_secs", &self.webhook_tolerance_secs)
            .field("stripe_api_key", &redacted(&self.stripe_api_key))
            .field(
                "stripe_webhook_secret",
                &redacted(&self.stripe_webhook_secret),
            )
            .finish_non_exhaustive()
    }
}

impl BillingConfig {
    /// Read the Stripe secrets from the environment (empty counts as unset).
    pub(super) fn read_secrets(&mut self) {
        let var = |name| std::env::var(name).ok().filter(|value| !value.is_empty());
        self.stripe_api_key = var("STRIPE_API_KEY");
        self.stripe_webhook_secret = var("STRIPE_WEBHOOK_SECRET");
    }

    /// The plan a Stripe price pays for, if it is one of ours.
    pub fn plan_of_price(&self, price: &str) -> Option<&str> {
        self.prices
            .iter()
            .find(|(_, id)| id.as_str() == price)
            .map(|(plan, _)| plan.as_str())
    }

    pub(super) fn validate(&self) -> anyhow::Result<()> {
        let base = &self.stripe_api_base;
        if !(base.starts_with("https://") || base.starts_with("http://")) {
            bail!("invalid configuration: billing.stripe_api_base must be an http(s) URL");
        }
        if self.webhook_tolerance_secs == 0 || self.stripe_timeout_ms == 0 {
            bail!("invalid configuration: billing.webhook_tolerance_secs and billing.stripe_timeout_ms must be greater than 0");
        }
        if let Some((plan, _)) = self
            .prices
            .iter()
            .find(|(_, price)| price.trim().is_empty())
        {
            bail!("invalid configuration: billing.prices.{plan} must not be empty");
        }
        Ok(())
    }
}
