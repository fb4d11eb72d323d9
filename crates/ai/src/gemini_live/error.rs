//! Why a Live session could not start or ended early.
//!
//! `Display` is for logs and operators (it may name variables and close
//! reasons, never the key); [`LiveError::user_message`] is the short text a
//! voice client may be shown, which hides the service's internals.

/// Everything that can end [`run_session`](super::run_session) with an error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LiveError {
    /// `GEMINI_API_KEY` is missing or blank.
    #[error("GEMINI_API_KEY is not set; set it to a Gemini API key to enable live voice")]
    MissingKey,
    /// A setting is unusable (bad endpoint URL, empty model).
    #[error("invalid Gemini Live configuration: {0}")]
    Config(String),
    /// The connection could not be opened or set up in time
    /// (DNS, TCP, TLS, HTTP upgrade, or no `setupComplete`).
    #[error("could not connect to the Gemini Live API: {0}")]
    Connect(String),
    /// The service sent something we cannot work with, or we could not
    /// encode a message.
    #[error("Gemini Live protocol error: {0}")]
    Protocol(String),
    /// The service closed the socket with this code and reason
    /// (1007 invalid argument, 1008 policy/auth, 1011 internal error, ...),
    /// or it dropped (1006) with nothing to resume from.
    #[error("the Gemini Live API closed the session (code {code}): {reason}")]
    Closed { code: u16, reason: String },
    /// The service sent an error object (`{"error": {...}}`).
    #[error("the Gemini Live API reported an error ({status}): {message}")]
    Server { status: String, message: String },
    /// The connection was lost and every resumption attempt failed.
    #[error("lost the Gemini Live connection and could not resume it after {attempts} attempt(s): {reason}")]
    ResumeFailed { attempts: u32, reason: String },
}

impl LiveError {
    /// A short message for the end user (fits a WebSocket close reason,
    /// which is limited to 123 bytes), without internal details.
    pub fn user_message(&self) -> &'static str {
        match self {
            // The seed's wording for an unconfigured AI client.
            LiveError::MissingKey | LiveError::Config(_) => {
                "Server configuration error for AI client"
            }
            LiveError::Connect(_) | LiveError::ResumeFailed { .. } => {
                "The voice service is unreachable right now; please try again"
            }
            LiveError::Closed { code: 1008, .. } => "The voice service refused the session",
            LiveError::Closed { code: 1011, .. } | LiveError::Server { .. } => {
                "The voice service had an internal error; please try again"
            }
            LiveError::Closed { .. } | LiveError::Protocol(_) => {
                "The voice session ended unexpectedly; please try again"
            }
        }
    }

    /// Whether another connection attempt may succeed (network trouble),
    /// as opposed to a refusal that will repeat (bad key, bad request).
    pub(crate) fn is_transient(&self) -> bool {
        match self {
            LiveError::Connect(_) => true,
            LiveError::Closed { code, .. } => is_resumable_close(*code),
            _ => false,
        }
    }

    /// Replace any occurrence of `secret` (the key) in the message, for
    /// errors whose text comes from libraries that may echo the URL.
    pub(crate) fn redacted(self, secret: &str) -> Self {
        if secret.is_empty() {
            return self;
        }
        let scrub = |text: String| text.replace(secret, "<redacted>");
        match self {
            LiveError::Config(m) => LiveError::Config(scrub(m)),
            LiveError::Connect(m) => LiveError::Connect(scrub(m)),
            LiveError::Protocol(m) => LiveError::Protocol(scrub(m)),
            LiveError::Closed { code, reason } => LiveError::Closed {
                code,
                reason: scrub(reason),
            },
            LiveError::Server { status, message } => LiveError::Server {
                status,
                message: scrub(message),
            },
            LiveError::ResumeFailed { attempts, reason } => LiveError::ResumeFailed {
                attempts,
                reason: scrub(reason),
            },
            LiveError::MissingKey => LiveError::MissingKey,
        }
    }
}

/// Close codes after which resuming makes sense: a normal end of the
/// connection (1000, 1001: the service rotates connections about every ten
/// minutes; 1005: a close frame without a code), a dropped connection (1006), a restart (1012) or "try again
/// later" (1013). Not 1007/1008 (our request or key is refused: it would be
/// again) nor 1011 (internal error: report it).
pub(crate) fn is_resumable_close(code: u16) -> bool {
    matches!(code, 1000 | 1001 | 1005 | 1006 | 1012 | 1013)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gemini_user_messages_fit_a_close_frame_and_hide_details() {
        let errors = [
            LiveError::MissingKey,
            LiveError::Config("x".into()),
            LiveError::Connect("dns".into()),
            LiveError::Protocol("p".into()),
            LiveError::Closed {
                code: 1011,
                reason: "Internal error occurred.".into(),
            },
            LiveError::Closed {
                code: 1008,
                reason: "API key not valid".into(),
            },
            LiveError::Server {
                status: "INTERNAL".into(),
                message: "m".into(),
            },
            LiveError::ResumeFailed {
                attempts: 3,
                reason: "r".into(),
            },
        ];
        for error in errors {
            let text = error.user_message();
            assert!(text.len() <= 123, "{text}");
            assert!(!text.contains("API key not valid"));
        }
        assert_eq!(
            LiveError::MissingKey.user_message(),
            "Server configuration error for AI client"
        );
    }

    #[test]
    fn gemini_errors_redact_the_key() {
        let error = LiveError::Connect("GET ws://h/?key=sekrit failed".into()).redacted("sekrit");
        assert_eq!(
            error,
            LiveError::Connect("GET ws://h/?key=<redacted> failed".into())
        );
    }

    #[test]
    fn gemini_only_transport_closes_are_resumable() {
        for code in [1000, 1001, 1005, 1006, 1012, 1013] {
            assert!(is_resumable_close(code), "{code}");
        }
        for code in [1002, 1007, 1008, 1011] {
            assert!(!is_resumable_close(code), "{code}");
        }
    }
}
