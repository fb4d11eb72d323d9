//! AI providers for Colloquy.
//!
//! A [`Provider`] turns a conversation ([`ChatRequest`]) into a stream of
//! [`StreamEvent`]s: text deltas as they are produced, then one
//! [`StreamEvent::Finished`] with usage and finish reason. Dropping the stream
//! cancels the generation, which is how `stop`, shutdown and time-outs reach
//! the provider.
//!
//! [`select_provider`] is the model selector (seed 003's
//! `modelSelector.getModel()`): it builds the configured provider once at
//! start, or fails with an error that names what to set.
//!
//! # Layout
//! - [`provider`]: the trait, request and event types, errors.
//! - [`history`]: trimming a conversation to a context budget.
//! - [`gemini_live`]: the Gemini Live API client (real-time voice in and
//!   out over one WebSocket, with transparent session resumption).
//! - [`local`]: the embedded llama.cpp model (feature `local-llm`), a worker
//!   pool of OS threads behind a bounded queue; its settings in every build.
//! - [`openai`]: OpenAI-compatible chat completions with streaming (OpenAI, Ollama, vLLM, llama.cpp server).
//! - [`selector`]: `COLLOQUY_MODEL` parsing and provider construction.

pub mod gemini_live;
pub mod history;
pub mod local;
pub mod openai;
pub mod provider;
pub mod selector;

pub use gemini_live::{
    run_session as run_live_session, LiveChannels, LiveConfig, LiveError, LiveEvent, LiveSetup,
    LiveToolResult, LiveUsage,
};
pub use local::LocalConfig;
#[cfg(feature = "local-llm")]
pub use local::{LocalError, LocalProvider};
pub use provider::{
    collect_reply, ChatMessage, ChatRequest, Completion, FinishReason, ModelInfo, Provider,
    ProviderError, ReplyStream, Role, StreamEvent, ToolCall, ToolChoice, ToolDefinition, Usage,
};
pub use selector::{select_provider, AiConfig, ModelSpec, SelectError};
