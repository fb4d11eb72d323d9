//! OpenAI-compatible chat completions with `stream: true` (OpenAI, Ollama,
//! vLLM, llama.cpp server, ...): one POST, then Server-Sent Events whose
//! `data:` lines are JSON chunks, ending with `data: [DONE]`.

use std::time::Duration;

use async_trait::async_trait;
use eventsource_stream::Eventsource;
use futures::{Stream, StreamExt};
use serde::Deserialize;
use serde_json::json;

use crate::provider::{
    ChatRequest, Completion, FinishReason, ModelInfo, Provider, ProviderError, ReplyStream,
    StreamEvent, Usage,
};

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
        let mut body = json!({
            "model": self.config.model,
            "messages": request.messages,
            "stream": true,
            "stream_options": { "include_usage": true },
        });
        if let Some(max_tokens) = request.max_tokens {
            body["max_tokens"] = json!(max_tokens);
        }
        if let Some(temperature) = request.temperature {
            body["temperature"] = json!(temperature);
        }
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
        Ok(Box::pin(parse_chunks(events, self.config.idle_timeout)))
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

#[derive(Deserialize)]
struct Chunk {
    #[serde(default)]
    choices: Vec<Choice>,
    usage: Option<Usage>,
    error: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct Choice {
    #[serde(default)]
    delta: Delta,
    finish_reason: Option<String>,
}

#[derive(Deserialize, Default)]
struct Delta {
    content: Option<String>,
}

/// Parse state carried between SSE events.
struct ParseState<S> {
    events: S,
    idle_timeout: Duration,
    finish_reason: Option<FinishReason>,
    usage: Option<Usage>,
    done: bool,
}

fn parse_finish_reason(reason: &str) -> FinishReason {
    match reason {
        "stop" => FinishReason::Stop,
        "length" => FinishReason::Length,
        other => FinishReason::Other(other.to_owned()),
    }
}

/// Turn SSE events into reply items; a silence longer than `idle_timeout`
/// ends the stream with [`ProviderError::Timeout`].
fn parse_chunks<S, E>(
    events: S,
    idle_timeout: Duration,
) -> impl Stream<Item = Result<StreamEvent, ProviderError>> + Send + 'static
where
    S: Stream<Item = Result<eventsource_stream::Event, E>> + Send + Unpin + 'static,
    E: std::fmt::Display + Send + 'static,
{
    let state = ParseState {
        events,
        idle_timeout,
        finish_reason: None,
        usage: None,
        done: false,
    };
    futures::stream::unfold(state, |mut state| async move {
        if state.done {
            return None;
        }
        loop {
            let next = match tokio::time::timeout(state.idle_timeout, state.events.next()).await {
                Err(_) => {
                    state.done = true;
                    return Some((Err(ProviderError::Timeout), state));
                }
                Ok(next) => next,
            };
            let event = match next {
                // The connection ended; a compliant server says [DONE] first,
                // but one that sent a finish reason has finished its reply.
                None => {
                    state.done = true;
                    let item = match state.finish_reason.take() {
                        Some(finish_reason) => Ok(StreamEvent::Finished(Completion {
                            usage: state.usage,
                            finish_reason,
                        })),
                        None => Err(ProviderError::Unavailable(
                            "the stream ended before the reply was complete".into(),
                        )),
                    };
                    return Some((item, state));
                }
                Some(Err(error)) => {
                    state.done = true;
                    return Some((Err(ProviderError::Unavailable(error.to_string())), state));
                }
                Some(Ok(event)) => event,
            };
            let data = event.data.trim();
            if data.is_empty() {
                continue;
            }
            if data == "[DONE]" {
                state.done = true;
                let completion = Completion {
                    usage: state.usage,
                    finish_reason: state.finish_reason.take().unwrap_or(FinishReason::Stop),
                };
                return Some((Ok(StreamEvent::Finished(completion)), state));
            }
            let chunk: Chunk = match serde_json::from_str(data) {
                Ok(chunk) => chunk,
                Err(error) => {
                    state.done = true;
                    return Some((Err(ProviderError::Protocol(error.to_string())), state));
                }
            };
            if let Some(error) = chunk.error {
                state.done = true;
                let message = error["message"]
                    .as_str()
                    .unwrap_or("stream error")
                    .to_owned();
                return Some((
                    Err(ProviderError::Upstream {
                        status: 200,
                        message,
                    }),
                    state,
                ));
            }
            if let Some(usage) = chunk.usage {
                state.usage = Some(usage);
            }
            let mut text = String::new();
            for choice in chunk.choices {
                if let Some(reason) = choice.finish_reason {
                    state.finish_reason = Some(parse_finish_reason(&reason));
                }
                if let Some(content) = choice.delta.content {
                    text.push_str(&content);
                }
            }
            if !text.is_empty() {
                return Some((Ok(StreamEvent::Delta(text)), state));
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::stream;

    fn sse(lines: &[&str]) -> impl Stream<Item = Result<bytes_like::Bytes, std::io::Error>> {
        let body: String = lines.iter().map(|l| format!("data: {l}\n\n")).collect();
        stream::iter(vec![Ok(bytes_like::Bytes::from(body))])
    }

    mod bytes_like {
        pub type Bytes = Vec<u8>;
    }

    async fn collect(lines: &[&str]) -> Vec<Result<StreamEvent, String>> {
        let events = sse(lines).eventsource();
        parse_chunks(events, Duration::from_secs(5))
            .map(|r| r.map_err(|e| e.to_string()))
            .collect()
            .await
    }

    #[tokio::test]
    async fn deltas_then_finished_with_usage() {
        let items = collect(&[
            r#"{"choices":[{"delta":{"role":"assistant"}}]}"#,
            r#"{"choices":[{"delta":{"content":"Hel"}}]}"#,
            r#"{"choices":[{"delta":{"content":"lo"},"finish_reason":"stop"}]}"#,
            r#"{"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}}"#,
            "[DONE]",
        ])
        .await;
        assert_eq!(
            items,
            vec![
                Ok(StreamEvent::Delta("Hel".into())),
                Ok(StreamEvent::Delta("lo".into())),
                Ok(StreamEvent::Finished(Completion {
                    usage: Some(Usage {
                        prompt_tokens: 3,
                        completion_tokens: 2
                    }),
                    finish_reason: FinishReason::Stop
                })),
            ]
        );
    }

    #[tokio::test]
    async fn stream_cut_before_finish_is_an_error() {
        let items = collect(&[r#"{"choices":[{"delta":{"content":"Hi"}}]}"#]).await;
        assert_eq!(items.len(), 2);
        assert!(items[1].is_err());
    }

    #[tokio::test]
    async fn malformed_chunk_is_a_protocol_error() {
        let items = collect(&["{not json"]).await;
        assert!(matches!(items.as_slice(), [Err(e)] if e.contains("unexpected data")));
    }

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
