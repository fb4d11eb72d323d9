//! OpenAI-compatible chat completions with `stream: true` (OpenAI, Ollama,
//! vLLM, llama.cpp server, ...): one POST ([`wire`]), then Server-Sent
//! Events of text and tool-call chunks ([`stream`]).

mod stream;
mod wire;

pub use stream::{MAX_TOOL_ARGUMENT_BYTES, MAX_TOOL_CALLS};

use std::time::Duration;

use async_trait::async_trait;
use eventsource_stream::Eventsource;

use crate::provider::{ChatRequest, ModelInfo, Provider, ProviderError, ReplyStream};

/// The public OpenAI endpoint, used when `OPENAI_BASE_URL` is unset.
pub const DEFAULT_BASE_URL: &str = "https://api.openai.com/v1";

/// Settings for [`OpenAiProvider`].
#[derive(Clone)]
pub struct OpenAiConfig {
    /// Base URL up to and including the version segment, e.g. `https://api.openai.com/v1`.
    pub base_url: String,
    /// Bearer key; local servers (Ollama, llama.cpp) need none.
    pub api_key: Option<String>,
    pub model: String,
    /// Time allowed to open the TCP/TLS connection.
    pub connect_timeout: Duration,
    /// Longest silence allowed before the response headers and between two chunks.
    pub idle_timeout: Duration,
}

impl std::fmt::Debug for OpenAiConfig {
    // Hand-written so the key can never reach a log line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenAiConfig")
            .field("base_url", &self.base_url)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("model", &self.model)
            .field("connect_timeout", &self.connect_timeout)
            .field("idle_timeout", &self.idle_timeout)
            .finish()
    }
}

/// A [`Provider`] speaking the OpenAI chat completions API.
pub struct OpenAiProvider {
    config: OpenAiConfig,
    client: reqwest::Client,
    endpoint: String,
}

impl OpenAiProvider {
    /// Build the provider and its HTTP client (no request is made yet).
    pub fn new(config: OpenAiConfig) -> Result<Self, ProviderError> {
        let client = reqwest::Client::builder()
            .connect_timeout(config.connect_timeout)
            .build()
            .map_err(|e| ProviderError::Unavailable(format!("HTTP client: {e}")))?;
        let endpoint = format!("{}/chat/completions", config.base_url.trim_end_matches('/'));
        Ok(Self {
            config,
            client,
            endpoint,
        })
    }
}

#[async_trait]
impl Provider for OpenAiProvider {
    fn info(&self) -> ModelInfo {
        ModelInfo {
            provider: "openai".into(),
            model: self.config.model.clone(),
        }
    }

    async fn stream_chat(&self, request: ChatRequest) -> Result<ReplyStream, ProviderError> {
        let body = wire::request_body(&self.config.model, &request);
        let mut builder = self.client.post(&self.endpoint).json(&body);
        if let Some(key) = &self.config.api_key {
            builder = builder.bearer_auth(key);
        }
        let response = tokio::time::timeout(self.config.idle_timeout, builder.send())
            .await
            .map_err(|_| ProviderError::Timeout)?
            .map_err(map_transport_error)?;
        let status = response.status();
        if !status.is_success() {
            let text = tokio::time::timeout(self.config.idle_timeout, response.text())
                .await
                .ok()
                .and_then(Result::ok)
                .unwrap_or_default();
            return Err(map_status(status.as_u16(), &text));
        }
        let events = response.bytes_stream().eventsource();
        Ok(Box::pin(stream::parse_chunks(
            events,
            self.config.idle_timeout,
        )))
    }
}

fn map_transport_error(error: reqwest::Error) -> ProviderError {
    if error.is_timeout() {
        ProviderError::Timeout
    } else {
        ProviderError::Unavailable(error.without_url().to_string())
    }
}

fn map_status(status: u16, body: &str) -> ProviderError {
    let message = serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v["error"]["message"].as_str().map(str::to_owned))
        .unwrap_or_else(|| body.chars().take(200).collect());
    match status {
        401 | 403 => ProviderError::Unauthorized { status },
        429 => ProviderError::RateLimited,
        _ => ProviderError::Upstream { status, message },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_mapping() {
        assert!(matches!(
            map_status(401, ""),
            ProviderError::Unauthorized { .. }
        ));
        assert!(matches!(map_status(429, ""), ProviderError::RateLimited));
        match map_status(500, r#"{"error":{"message":"boom"}}"#) {
            ProviderError::Upstream { status, message } => {
                assert_eq!(status, 500);
                assert_eq!(message, "boom");
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn debug_output_hides_the_key() {
        let config = OpenAiConfig {
            base_url: DEFAULT_BASE_URL.into(),
            api_key: Some("sk-secret".into()),
            model: "m".into(),
            connect_timeout: Duration::from_secs(1),
            idle_timeout: Duration::from_secs(1),
        };
        assert!(!format!("{config:?}").contains("sk-secret"));
    }
}
