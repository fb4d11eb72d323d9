//! Rust client SDK for Colloquy's chat socket.
//!
//! [`ChatSocket`] connects with a token, reads `ready`, sends
//! [`ClientEvent`]s and yields [`ServerEvent`]s with duplicates removed (by
//! `seq`). When the connection drops, [`ChatSocket::resume`] reconnects with
//! exponential backoff and full jitter and asks the server to replay every
//! event after the last `seq` seen, so the caller gets each event exactly
//! once and in order; [`ChatSocket::resume_at`] resumes through another
//! server of a cluster. [`auth`] has the HTTP calls to get a token,
//! [`conversations`] the one to create a conversation before opening it.
//!
//! ```no_run
//! # async fn demo() -> Result<(), colloquy_client::ClientError> {
//! use colloquy_client::{auth, ChatSocket, SocketSettings};
//! let token = auth::anonymous("http://127.0.0.1:8080").await?;
//! let mut socket = ChatSocket::connect(SocketSettings::new("http://127.0.0.1:8080", &token)).await?;
//! socket.send_text("Hello!", Some("c-1")).await?;
//! while let Ok(event) = socket.next_event().await {
//!     println!("{event:?}");
//! }
//! # Ok(()) }
//! ```

pub mod auth;
mod backoff;
pub mod conversations;
mod http;
mod socket;

pub use backoff::Backoff;
pub use colloquy_protocol::{ClientEvent, Seq, ServerEvent};
pub use socket::{ChatSocket, SeqAudit, SocketSettings};

/// Why a client call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("connection failed: {0}")]
    Connect(String),
    #[error("the server closed the socket ({code}: {reason})")]
    Closed { code: u16, reason: String },
    #[error("the connection was lost")]
    Disconnected,
    #[error("unexpected data from the server: {0}")]
    Protocol(String),
    #[error("HTTP request failed: {0}")]
    Http(String),
    #[error("gave up reconnecting after {0} attempts")]
    GaveUp(u32),
}

impl ClientError {
    /// Whether reconnecting may help (not an auth or policy refusal).
    pub fn is_retryable(&self) -> bool {
        match self {
            // A reconnect can race the server noticing the old connection
            // is gone; its slot frees within moments.
            ClientError::Closed { reason, .. } if reason == "Too many connections" => true,
            ClientError::Closed { code, .. } => !matches!(code, 1008 | 1009),
            ClientError::Protocol(_) | ClientError::GaveUp(_) => false,
            _ => true,
        }
    }
}
