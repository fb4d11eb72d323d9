//! Creating a Stripe Checkout Session for a plan's subscription, through
//! Stripe's form-encoded HTTP API (`POST /v1/checkout/sessions`).

use std::time::Duration;

use serde::Deserialize;
use uuid::Uuid;

use crate::config::BillingConfig;

/// Talks to Stripe's API with the secret key.
pub struct StripeClient {
    http: reqwest::Client,
    api_base: String,
    api_key: String,
}

/// What checkout needs to know about the buyer and the plan.
pub struct CheckoutRequest<'a> {
    pub user_id: Uuid,
    pub email: Option<&'a str>,
    pub plan: &'a str,
    pub price: &'a str,
    pub success_url: &'a str,
    pub cancel_url: &'a str,
}

/// The part of Stripe's answer we pass on.
#[derive(Debug, Deserialize)]
pub struct CheckoutSession {
    pub id: String,
    pub url: String,
}

/// Why Stripe did not give us a session.
#[derive(Debug, thiserror::Error)]
pub enum StripeError {
    #[error("calling Stripe failed: {0}")]
    Transport(#[from] reqwest::Error),
    #[error("Stripe answered {status}: {message}")]
    Refused { status: u16, message: String },
}

impl StripeClient {
    /// A client when `STRIPE_API_KEY` is set; `None` otherwise.
    pub fn from_config(config: &BillingConfig) -> anyhow::Result<Option<Self>> {
        let Some(api_key) = config.stripe_api_key.clone() else {
            return Ok(None);
        };
        let http = reqwest::Client::builder()
            .timeout(Duration::from_millis(config.stripe_timeout_ms))
            .build()?;
        Ok(Some(Self {
            http,
            api_base: config.stripe_api_base.trim_end_matches('/').to_owned(),
            api_key,
        }))
    }

    /// Open a subscription Checkout Session; the webhook learns the user
    /// from `client_reference_id` and the plan from `metadata[plan]`.
    pub async fn create_checkout_session(
        &self,
        request: &CheckoutRequest<'_>,
    ) -> Result<CheckoutSession, StripeError> {
        let user_id = request.user_id.to_string();
        let mut form = vec![
            ("mode", "subscription"),
            ("line_items[0][price]", request.price),
            ("line_items[0][quantity]", "1"),
            ("client_reference_id", &user_id),
            ("metadata[plan]", request.plan),
            ("subscription_data[metadata][plan]", request.plan),
            ("subscription_data[metadata][user_id]", &user_id),
            ("success_url", request.success_url),
            ("cancel_url", request.cancel_url),
        ];
        if let Some(email) = request.email {
            form.push(("customer_email", email));
        }
        let response = self
            .http
            .post(format!("{}/v1/checkout/sessions", self.api_base))
            .bearer_auth(&self.api_key)
            .form(&form)
            .send()
            .await?;
        let status = response.status();
        if !status.is_success() {
            // Stripe's errors are `{"error": {"message": ...}}`.
            let body: serde_json::Value = response.json().await.unwrap_or_default();
            let message = body["error"]["message"]
                .as_str()
                .unwrap_or("no error message")
                .chars()
                .take(300)
                .collect();
            return Err(StripeError::Refused {
                status: status.as_u16(),
                message,
            });
        }
        Ok(response.json().await?)
    }
}
