//! A client for the Gemini Live API (`BidiGenerateContent`): one WebSocket
//! per session carrying JSON messages, user audio up (16 kHz PCM16 as
//! base64 `realtimeInput`), the model's spoken reply down (24 kHz PCM16 in
//! `serverContent.modelTurn`), with transcripts of both sides.
//!
//! [`run_session`] is the whole API: give it a [`LiveConfig`], the system
//! instruction (built by the caller), a channel of audio chunks in and a
//! channel of [`LiveEvent`]s out. It runs both directions concurrently,
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

mod buffer;
mod config;
mod connection;
mod error;
mod pump;
mod session;
mod wire;

use serde::Deserialize;

pub use config::{
    LiveConfig, API_KEY_VAR, DEFAULT_CONNECT_TIMEOUT, DEFAULT_ENDPOINT,
    DEFAULT_MAX_RECONNECT_ATTEMPTS, DEFAULT_MODEL, DEFAULT_RESUME_BUFFER_BYTES,
    DEFAULT_SEND_TIMEOUT, ENDPOINT_VAR, MODEL_VAR, VOICE_VAR,
};
pub use error::LiveError;
pub use session::run_session;
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
