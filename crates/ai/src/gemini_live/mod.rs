//! A client for the Gemini Live API (`BidiGenerateContent`): one WebSocket
//! per session carrying JSON messages, user audio up (16 kHz PCM16 as
//! base64 `realtimeInput`), the model's spoken reply down (24 kHz PCM16 in
//! `serverContent.modelTurn`), with transcripts of both sides.
//!
//! [`run_session`] is the whole API: give it a [`LiveConfig`], a
//! [`LiveSetup`] (the system instruction, built by the caller, and the
//! tools the model may call) and [`LiveChannels`]: audio chunks and tool
//! results in, [`LiveEvent`]s out. It runs both directions concurrently,
//! resumes transparently when the service rotates the connection (`goAway`,
//! session resumption handles), and returns when either side ends or the
//! service ends the session ([`LiveError`]).
//!
//! # Layout
//! - `config`: [`LiveConfig`], read from `GEMINI_API_KEY` and friends.
//! - `error`: [`LiveError`] and its user-facing messages.
//! - `wire`: the JSON messages, typed (camelCase, unknown fields ignored).
//! - `connection`: connect (rustls for `wss://`), setup, `setupComplete`.
//! - `session`: [`run_session`] and the resumption loop.
//! - `pump`: the two halves of a connection (audio up, events down).
//! - `buffer`: the bounded audio buffer used while (re)connecting.
//! - `tools`: function declarations, `toolCall`, `toolCallCancellation`
//!   and `toolResponse`, and the calls the service still waits for.

mod buffer;
mod config;
mod connection;
mod error;
mod pump;
mod session;
mod tools;
mod wire;

use serde::Deserialize;
use tokio::sync::mpsc;

use crate::{ToolCall, ToolDefinition};

pub use config::{
    LiveConfig, API_KEY_VAR, DEFAULT_CONNECT_TIMEOUT, DEFAULT_ENDPOINT,
    DEFAULT_MAX_RECONNECT_ATTEMPTS, DEFAULT_MODEL, DEFAULT_RESUME_BUFFER_BYTES,
    DEFAULT_SEND_TIMEOUT, ENDPOINT_VAR, MODEL_VAR, VOICE_VAR,
};
pub use error::LiveError;
pub use session::run_session;
pub use tools::LiveToolResult;
pub use wire::{INPUT_AUDIO_MIME, OUTPUT_AUDIO_RATE};

/// Something the model (or the service) did, in the order it happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LiveEvent {
    /// A chunk of the model's speech: 24 kHz mono PCM16 little-endian bytes.
    Audio(Vec<u8>),
    /// The user spoke over the model: stop playing what was queued. Comes
    /// before any audio of the next reply.
    Interrupted,
    /// A piece of the transcript of what the user said.
    InputTranscript(String),
    /// A piece of the transcript of what the model says.
    OutputTranscript(String),
    /// The model has finished its turn and waits for the user.
    TurnComplete,
    /// The model has finished generating this reply (its audio may still be
    /// arriving or playing).
    GenerationComplete,
    /// Token counts so far, as the service reports them.
    Usage(LiveUsage),
    /// The connection was replaced by a resumed one; nothing was lost that
    /// the caller needs to act on. Informational.
    Reconnected,
    /// The model asks for these calls (`toolCall`); the caller runs them and
    /// sends each result through [`LiveChannels::tool_results_in`]. The
    /// model waits for them before it goes on.
    ToolCalls(Vec<ToolCall>),
    /// The service no longer wants these calls (`toolCallCancellation`,
    /// e.g. the user spoke over the model): stop them; their results would
    /// not be sent. Only ids of calls still waiting for a result.
    ToolCallsCancelled(Vec<String>),
}

/// What a session is set up with (its `setup` message).
#[derive(Debug, Clone, Default)]
pub struct LiveSetup {
    /// The system instruction, verbatim.
    pub system_instruction: String,
    /// Functions the model may call; none declared when empty.
    pub tools: Vec<ToolDefinition>,
}

/// The caller's ends of a session.
#[derive(Debug)]
pub struct LiveChannels {
    /// The user's audio: 16 kHz mono PCM16 LE chunks. Closing it ends the
    /// session.
    pub audio_in: mpsc::Receiver<Vec<u8>>,
    /// Results of the calls of [`LiveEvent::ToolCalls`], each sent as a
    /// `toolResponse` (results of cancelled or unknown calls are dropped).
    /// Closing it only stops results; the session goes on.
    pub tool_results_in: mpsc::Receiver<LiveToolResult>,
    /// Where the session's events go; dropping the receiver ends the session.
    pub events_out: mpsc::Sender<LiveEvent>,
}

/// `usageMetadata`: token counts the service reports during a session.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct LiveUsage {
    pub prompt_token_count: u32,
    pub cached_content_token_count: u32,
    pub response_token_count: u32,
    pub tool_use_prompt_token_count: u32,
    pub thoughts_token_count: u32,
    pub total_token_count: u32,
}
