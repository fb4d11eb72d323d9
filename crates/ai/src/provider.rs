//! The provider abstraction every model backend implements.

use async_trait::async_trait;
use futures::stream::BoxStream;
use serde::{Deserialize, Serialize};

/// Who a [`ChatMessage`] is from, as chat models understand it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    System,
    User,
    Assistant,
    /// The result of a tool the assistant called.
    Tool,
}

/// One message of the conversation sent to a model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    pub role: Role,
    pub content: String,
    /// An assistant turn that called tools: the calls, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCall>,
    /// A [`Role::Tool`] message: the call it answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
}

impl ChatMessage {
    /// A message with the given role and text.
    pub fn new(role: Role, content: impl Into<String>) -> Self {
        Self {
            role,
            content: content.into(),
            tool_calls: Vec::new(),
            tool_call_id: None,
        }
    }

    /// An assistant turn that called `calls` (after any text in `content`).
    pub fn tool_calls(content: impl Into<String>, calls: Vec<ToolCall>) -> Self {
        Self {
            tool_calls: calls,
            ..Self::new(Role::Assistant, content)
        }
    }

    /// The result of call `call_id`, as the model will read it.
    pub fn tool_result(call_id: impl Into<String>, content: impl Into<String>) -> Self {
        Self {
            tool_call_id: Some(call_id.into()),
            ..Self::new(Role::Tool, content)
        }
    }
}

/// A tool the model may call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolDefinition {
    /// `^[a-zA-Z0-9_-]{1,64}$`, as OpenAI requires.
    pub name: String,
    /// What it does and when to use it, for the model.
    pub description: String,
    /// JSON Schema of the arguments object.
    pub parameters: serde_json::Value,
}

/// One call the model asked for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolCall {
    /// The provider's id for the call; its result names it.
    pub id: String,
    pub name: String,
    /// The arguments as the model wrote them: JSON text, not yet validated.
    pub arguments: String,
}

/// What to generate a reply for.
#[derive(Debug, Clone, Default)]
pub struct ChatRequest {
    /// System instruction first (if any), then the conversation, oldest first.
    pub messages: Vec<ChatMessage>,
    /// Upper bound on generated tokens; the provider's default when `None`.
    pub max_tokens: Option<u32>,
    /// Sampling temperature; the provider's default when `None`.
    pub temperature: Option<f32>,
    /// Tools the model may call; none offered when empty.
    pub tools: Vec<ToolDefinition>,
    /// Whether the model may call [`tools`](Self::tools) in this reply.
    pub tool_choice: ToolChoice,
}

/// Whether the model may call the offered tools now.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ToolChoice {
    /// The model decides.
    #[default]
    Auto,
    /// Answer in text: the tools stay declared (earlier calls in the
    /// history refer to them) but no new call may be made. The agent loop
    /// asks this once its tool rounds are spent.
    None,
    /// The reply must call one of the tools.
    Required,
}

/// Token counts reported by a provider.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    pub prompt_tokens: u32,
    pub completion_tokens: u32,
    /// Of `prompt_tokens`, those the provider read from its cache instead
    /// of processing them (0 when it does not say).
    #[serde(default)]
    pub cached_prompt_tokens: u32,
}

impl std::ops::AddAssign for Usage {
    /// Sum the usage of several requests (the rounds of one agent loop).
    fn add_assign(&mut self, other: Self) {
        self.prompt_tokens = self.prompt_tokens.saturating_add(other.prompt_tokens);
        self.completion_tokens = self
            .completion_tokens
            .saturating_add(other.completion_tokens);
        self.cached_prompt_tokens = self
            .cached_prompt_tokens
            .saturating_add(other.cached_prompt_tokens);
    }
}

/// Why generation ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    /// The model ended its reply.
    Stop,
    /// The token limit was reached.
    Length,
    /// The model called tools ([`Completion::tool_calls`]) and waits for their results.
    ToolCalls,
    /// Anything else the provider reported (e.g. `content_filter`).
    Other(String),
}

/// The end of a successful generation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Completion {
    pub usage: Option<Usage>,
    pub finish_reason: FinishReason,
    /// The calls the model made, in the order it made them (empty unless it called tools).
    pub tool_calls: Vec<ToolCall>,
}

/// One item of a reply stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamEvent {
    /// The next piece of reply text (never a split UTF-8 character).
    Delta(String),
    /// Generation finished; no further items follow.
    Finished(Completion),
}

/// A reply being generated. Dropping it cancels the generation.
pub type ReplyStream = BoxStream<'static, Result<StreamEvent, ProviderError>>;

/// Read a whole reply: its text and how it finished. A stream that ends
/// without [`StreamEvent::Finished`] is a [`ProviderError::Protocol`].
pub async fn collect_reply(mut stream: ReplyStream) -> Result<(String, Completion), ProviderError> {
    use futures::StreamExt;
    let mut text = String::new();
    while let Some(item) = stream.next().await {
        match item? {
            StreamEvent::Delta(piece) => text.push_str(&piece),
            StreamEvent::Finished(completion) => return Ok((text, completion)),
        }
    }
    Err(ProviderError::Protocol(
        "the reply ended without a finish".into(),
    ))
}

/// Which provider and model a [`Provider`] serves, for `/api/config` and logs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ModelInfo {
    /// Provider kind: `openai`, `local`, ...
    pub provider: String,
    /// Model name as the provider knows it.
    pub model: String,
}

impl ModelInfo {
    /// `provider:model`, the form `COLLOQUY_MODEL` takes.
    pub fn id(&self) -> String {
        format!("{}:{}", self.provider, self.model)
    }
}

/// Why a provider could not produce (the rest of) a reply.
///
/// The `Display` text is for logs; clients get the text [`ProviderError::public_message_for`] gives for its code.
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    #[error("could not reach the provider: {0}")]
    Unavailable(String),
    #[error("the provider did not answer in time")]
    Timeout,
    #[error("the provider rejected the credentials (HTTP {status})")]
    Unauthorized { status: u16 },
    #[error("the provider is rate limiting requests")]
    RateLimited,
    #[error("the provider answered HTTP {status}: {message}")]
    Upstream { status: u16, message: String },
    #[error("unexpected data from the provider: {0}")]
    Protocol(String),
    #[error("the model is busy: too many replies are queued")]
    Overloaded,
    #[error("model failure: {0}")]
    Model(String),
}

impl ProviderError {
    /// A stable, machine-readable code for the client's `error` event.
    pub fn code(&self) -> &'static str {
        match self {
            ProviderError::Unavailable(_) => "provider_unavailable",
            ProviderError::Timeout => "provider_timeout",
            ProviderError::Unauthorized { .. } => "provider_auth",
            ProviderError::RateLimited => "provider_rate_limited",
            ProviderError::Upstream { .. } | ProviderError::Protocol(_) => "provider_error",
            ProviderError::Overloaded => "overloaded",
            ProviderError::Model(_) => "model_error",
        }
    }

    /// The message safe to show a user for an error [`code`](Self::code):
    /// no upstream text, URLs or keys. Taking the code rather than the error
    /// lets a stored failure (which keeps only its code) be described the
    /// same way as a live one.
    pub fn public_message_for(code: &str) -> &'static str {
        match code {
            "provider_unavailable" => "The AI provider is unavailable. Please try again.",
            "provider_timeout" => "The AI provider did not answer in time. Please try again.",
            "provider_auth" => "The server's AI provider credentials were rejected.",
            "provider_rate_limited" => "The AI provider is busy. Please try again shortly.",
            "overloaded" => "The model is busy. Please try again shortly.",
            "model_error" => "The model failed to generate a reply.",
            _ => "The AI provider returned an error. Please try again.",
        }
    }
}

/// A model backend that streams replies.
#[async_trait]
pub trait Provider: Send + Sync + 'static {
    /// Which provider and model this is.
    fn info(&self) -> ModelInfo;

    /// Start generating a reply. Errors before the first token come back here;
    /// errors after it arrive as an `Err` item in the stream.
    async fn stream_chat(&self, request: ChatRequest) -> Result<ReplyStream, ProviderError>;

    /// A hint that requests starting with `messages` are coming (a voice
    /// session opened with its system instruction): a provider with a prompt
    /// cache may process them now, so the first reply starts sooner. Best
    /// effort: it never fails and may do nothing, as it does by default.
    fn prepare(&self, messages: Vec<ChatMessage>) {
        let _ = messages;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_collected_reply_is_its_text_and_finish_or_an_error() {
        let finished = Completion {
            usage: None,
            finish_reason: FinishReason::Stop,
            tool_calls: Vec::new(),
        };
        let whole: ReplyStream = Box::pin(futures::stream::iter(vec![
            Ok(StreamEvent::Delta("Hel".into())),
            Ok(StreamEvent::Delta("lo".into())),
            Ok(StreamEvent::Finished(finished.clone())),
        ]));
        assert_eq!(
            collect_reply(whole).await.unwrap(),
            ("Hello".into(), finished)
        );
        let cut: ReplyStream = Box::pin(futures::stream::iter(vec![Ok(StreamEvent::Delta(
            "Hel".into(),
        ))]));
        assert!(matches!(
            collect_reply(cut).await,
            Err(ProviderError::Protocol(_))
        ));
        let failed: ReplyStream =
            Box::pin(futures::stream::iter(vec![Err(ProviderError::Timeout)]));
        assert!(matches!(
            collect_reply(failed).await,
            Err(ProviderError::Timeout)
        ));
    }

    #[test]
    fn every_error_has_a_user_message_that_hides_its_details() {
        let errors = [
            ProviderError::Unavailable("10.0.0.7 refused".into()),
            ProviderError::Timeout,
            ProviderError::Unauthorized { status: 401 },
            ProviderError::RateLimited,
            ProviderError::Upstream {
                status: 500,
                message: "key sk-123 invalid".into(),
            },
            ProviderError::Protocol("bad json".into()),
            ProviderError::Overloaded,
            ProviderError::Model("llama panic".into()),
        ];
        for error in errors {
            let message = ProviderError::public_message_for(error.code());
            for detail in ["10.0.0.7", "sk-123", "bad json", "llama"] {
                assert!(!message.contains(detail), "{message}");
            }
        }
        assert_ne!(
            ProviderError::public_message_for("provider_timeout"),
            ProviderError::public_message_for("provider_error")
        );
    }
}
