//! Webhook tools (`[[tools.http]]`): a call is POSTed as JSON to the
//! team's backend, signed so the backend knows it comes from us and is
//! fresh, and the answer (size and time capped) is the tool's result.
//!
//! The request body is
//! `{"name", "arguments", "conversation_id", "user_id", "call_id"}`, where
//! `user_id` is the conversation's owner: the only user a tool acts for.
//! Headers: `X-Colloquy-Timestamp: <unix seconds>` and
//! `X-Colloquy-Signature: sha256=<hex HMAC-SHA256 of "<timestamp>.<body>">`
//! with the tool's secret. Signing the timestamp with the body lets the
//! backend refuse old requests (replays) by their timestamp.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use async_trait::async_trait;
use colloquy_ai::ToolDefinition;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

use super::{registry::unavailable, Tool, ToolContext, ToolFailure, ToolSettings};
use crate::config::tools::HttpToolConfig;

/// The header carrying the signature.
pub const SIGNATURE_HEADER: &str = "x-colloquy-signature";
/// The header carrying the signed timestamp (unix seconds).
pub const TIMESTAMP_HEADER: &str = "x-colloquy-timestamp";

/// A webhook tool.
pub struct HttpTool {
    definition: ToolDefinition,
    url: String,
    secret: Vec<u8>,
    client: reqwest::Client,
    max_result_bytes: usize,
}

impl HttpTool {
    /// The tool `config` declares, its secret read from the environment.
    pub fn new(config: &HttpToolConfig, settings: ToolSettings) -> anyhow::Result<Self> {
        let secret = std::env::var(&config.secret_env).with_context(|| {
            format!(
                "tools.http `{}`: the environment variable {} (its secret) is not set",
                config.name, config.secret_env
            )
        })?;
        if secret.is_empty() {
            anyhow::bail!(
                "tools.http `{}`: the environment variable {} is empty",
                config.name,
                config.secret_env
            );
        }
        let client = reqwest::Client::builder()
            // A redirect would send the signed call somewhere not declared.
            .redirect(reqwest::redirect::Policy::none())
            .timeout(settings.call_timeout)
            .build()
            .context("building the webhook HTTP client")?;
        Ok(Self {
            definition: ToolDefinition {
                name: config.name.clone(),
                description: config.description.clone(),
                parameters: config.parameters.clone(),
            },
            url: config.url.clone(),
            secret: secret.into_bytes(),
            client,
            max_result_bytes: settings.max_result_bytes,
        })
    }
}

/// `sha256=<hex>` of the HMAC-SHA256 of `"<timestamp>.<body>"`.
pub fn signature(secret: &[u8], timestamp: u64, body: &[u8]) -> String {
    // HMAC takes keys of any length: this cannot fail.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) else {
        unreachable!("HMAC accepts any key length")
    };
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    let digest = mac.finalize().into_bytes();
    let hex: String = digest.iter().map(|byte| format!("{byte:02x}")).collect();
    format!("sha256={hex}")
}

#[async_trait]
impl Tool for HttpTool {
    fn definition(&self) -> ToolDefinition {
        self.definition.clone()
    }

    async fn call(&self, context: &ToolContext, arguments: Value) -> Result<Value, ToolFailure> {
        let body = json!({
            "name": self.definition.name,
            "arguments": arguments,
            "conversation_id": context.conversation_id,
            "user_id": context.user_id,
            "call_id": context.call_id,
        })
        .to_string();
        let timestamp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO)
            .as_secs();
        let response = self
            .client
            .post(&self.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(TIMESTAMP_HEADER, timestamp.to_string())
            .header(
                SIGNATURE_HEADER,
                signature(&self.secret, timestamp, body.as_bytes()),
            )
            .body(body)
            .send()
            .await
            .map_err(|error| {
                // Per call, so at debug like every tool name (issue 15's safety rule).
                tracing::debug!(tool = %self.definition.name, %error, "a webhook tool is unreachable");
                if error.is_timeout() {
                    timed_out()
                } else {
                    unavailable()
                }
            })?;
        let status = response.status();
        let body = read_capped(response, self.max_result_bytes).await?;
        if !status.is_success() {
            return Err(ToolFailure::new(
                "tool_failed",
                format!("The tool's backend answered with HTTP {}.", status.as_u16()),
            ));
        }
        // JSON is passed on as JSON; anything else as text.
        Ok(serde_json::from_slice(&body)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned())))
    }
}

fn timed_out() -> ToolFailure {
    ToolFailure::new("timeout", "The tool's backend did not answer in time.")
}

/// The response body, read piece by piece and given up on as soon as it
/// passes `limit` bytes (so a huge answer is never held in memory).
async fn read_capped(
    mut response: reqwest::Response,
    limit: usize,
) -> Result<Vec<u8>, ToolFailure> {
    let too_large = || {
        ToolFailure::new(
            "result_too_large",
            format!("The result is larger than {limit} bytes."),
        )
    };
    if response
        .content_length()
        .is_some_and(|length| length > limit as u64)
    {
        return Err(too_large());
    }
    let mut body = Vec::new();
    loop {
        let chunk = response.chunk().await.map_err(|error| {
            if error.is_timeout() {
                timed_out()
            } else {
                ToolFailure::new("tool_failed", "The tool's backend answer was cut off.")
            }
        })?;
        let Some(chunk) = chunk else {
            return Ok(body);
        };
        if body.len() + chunk.len() > limit {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_covers_timestamp_and_body() {
        // Reference value from `printf '1700000000.{}' | openssl dgst -sha256 -hmac secret`.
        let expected = signature(b"secret", 1_700_000_000, b"{}");
        assert_eq!(
            expected,
            "sha256=b8569b78799ff9e3cbff0fc2d63a33a2b57f3282abd07c37ae5e8e7d79a5f163"
        );
        assert_ne!(expected, signature(b"secret", 1_700_000_001, b"{}"));
        assert_ne!(expected, signature(b"other", 1_700_000_000, b"{}"));
    }
}
