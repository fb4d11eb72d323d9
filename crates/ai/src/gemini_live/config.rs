//! Settings of a Live session: key, model, endpoint, voice and the limits
//! that bound connecting, sending and resuming. Read from the environment
//! with [`LiveConfig::from_env`], or from any lookup with
//! [`LiveConfig::from_vars`] (tests use that to avoid touching the process
//! environment).

use std::time::Duration;

use super::LiveError;

/// The public Live API endpoint (Gemini Developer API, `v1beta`), without the key.
pub const DEFAULT_ENDPOINT: &str = "wss://generativelanguage.googleapis.com/ws/google.ai.generativelanguage.v1beta.GenerativeService.BidiGenerateContent";

/// Model used when neither the caller nor `GEMINI_LIVE_MODEL` names one.
pub const DEFAULT_MODEL: &str = "gemini-2.5-flash-native-audio-preview-12-2025";

/// Environment variable holding the API key (required).
pub const API_KEY_VAR: &str = "GEMINI_API_KEY";
/// Environment variable overriding [`DEFAULT_ENDPOINT`] (e.g. a proxy or a test double).
pub const ENDPOINT_VAR: &str = "GEMINI_LIVE_ENDPOINT";
/// Environment variable naming the model when the caller passes none.
pub const MODEL_VAR: &str = "GEMINI_LIVE_MODEL";
/// Environment variable naming a prebuilt voice (e.g. `Puck`, `Kore`).
pub const VOICE_VAR: &str = "GEMINI_LIVE_VOICE";

/// Default for [`LiveConfig::connect_timeout`].
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default for [`LiveConfig::send_timeout`].
pub const DEFAULT_SEND_TIMEOUT: Duration = Duration::from_secs(10);
/// Default for [`LiveConfig::max_reconnect_attempts`].
pub const DEFAULT_MAX_RECONNECT_ATTEMPTS: u32 = 3;
/// Default for [`LiveConfig::resume_buffer_bytes`]: 15 seconds of 16 kHz
/// PCM16 (32,000 bytes a second), longer than one full connect time-out.
pub const DEFAULT_RESUME_BUFFER_BYTES: usize = 15 * 32_000;

/// Everything [`run_session`](super::run_session) needs to reach the service.
#[derive(Clone)]
pub struct LiveConfig {
    /// Gemini API key; sent only in the connection URL, never logged.
    pub api_key: String,
    /// Model name, with or without the `models/` prefix.
    pub model: String,
    /// `ws://` or `wss://` URL of `BidiGenerateContent`, without `?key=`.
    pub endpoint: String,
    /// Prebuilt voice name; the model's default voice when `None`.
    pub voice: Option<String>,
    /// Time allowed for TCP + TLS + WebSocket handshake + `setupComplete`,
    /// for the first connection and for each resumption attempt.
    pub connect_timeout: Duration,
    /// Time allowed for one frame to be written upstream; a longer stall is
    /// treated as a lost connection.
    pub send_timeout: Duration,
    /// Resumption attempts after a lost connection before giving up
    /// (counted per outage; reset once a resumed connection works).
    pub max_reconnect_attempts: u32,
    /// Most user audio (bytes) held while (re)connecting. When full, the
    /// session stops reading its input, so the caller's channel applies
    /// backpressure instead of audio being dropped.
    pub resume_buffer_bytes: usize,
    /// Ask the service for sliding-window context compression, which lets an
    /// audio session outlive the ~15 minutes its context window would allow.
    pub context_window_compression: bool,
}

impl std::fmt::Debug for LiveConfig {
    // Hand-written so the key can never reach a log line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveConfig")
            .field("api_key", &"<redacted>")
            .field("model", &self.model)
            .field("endpoint", &self.endpoint)
            .field("voice", &self.voice)
            .field("connect_timeout", &self.connect_timeout)
            .field("send_timeout", &self.send_timeout)
            .field("max_reconnect_attempts", &self.max_reconnect_attempts)
            .field("resume_buffer_bytes", &self.resume_buffer_bytes)
            .field(
                "context_window_compression",
                &self.context_window_compression,
            )
            .finish()
    }
}

impl LiveConfig {
    /// A configuration for the public endpoint with default limits.
    pub fn new(api_key: impl Into<String>, model: impl Into<String>) -> Self {
        Self {
            api_key: api_key.into(),
            model: model.into(),
            endpoint: DEFAULT_ENDPOINT.to_owned(),
            voice: None,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            send_timeout: DEFAULT_SEND_TIMEOUT,
            max_reconnect_attempts: DEFAULT_MAX_RECONNECT_ATTEMPTS,
            resume_buffer_bytes: DEFAULT_RESUME_BUFFER_BYTES,
            context_window_compression: true,
        }
    }

    /// Read `GEMINI_API_KEY` (required), `GEMINI_LIVE_ENDPOINT`,
    /// `GEMINI_LIVE_MODEL` (when `model` is `None`) and `GEMINI_LIVE_VOICE`.
    pub fn from_env(model: Option<String>) -> Result<Self, LiveError> {
        Self::from_vars(model, |name| std::env::var(name).ok())
    }

    /// [`from_env`](Self::from_env) with the variables looked up through
    /// `var`. Blank values count as unset.
    pub fn from_vars(
        model: Option<String>,
        var: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, LiveError> {
        let get = |name: &str| {
            var(name)
                .map(|value| value.trim().to_owned())
                .filter(|value| !value.is_empty())
        };
        let api_key = get(API_KEY_VAR).ok_or(LiveError::MissingKey)?;
        let model = model
            .map(|m| m.trim().to_owned())
            .filter(|m| !m.is_empty())
            .or_else(|| get(MODEL_VAR))
            .unwrap_or_else(|| DEFAULT_MODEL.to_owned());
        let mut config = Self::new(api_key, model);
        if let Some(endpoint) = get(ENDPOINT_VAR) {
            config.endpoint = endpoint;
        }
        config.voice = get(VOICE_VAR);
        config.validate()?;
        Ok(config)
    }

    /// Check what can be checked before connecting.
    pub fn validate(&self) -> Result<(), LiveError> {
        if self.api_key.trim().is_empty() {
            return Err(LiveError::MissingKey);
        }
        if !(self.endpoint.starts_with("wss://") || self.endpoint.starts_with("ws://")) {
            return Err(LiveError::Config(format!(
                "{ENDPOINT_VAR} must be a ws:// or wss:// URL"
            )));
        }
        if self.model_resource() == "models/" {
            return Err(LiveError::Config("the Live model name is empty".into()));
        }
        Ok(())
    }

    /// The model as the setup message names it: `models/<name>`.
    pub fn model_resource(&self) -> String {
        let model = self.model.trim();
        if model.starts_with("models/") {
            model.to_owned()
        } else {
            format!("models/{model}")
        }
    }

    /// The URL to connect to: the endpoint with the key as `key=` query
    /// parameter. Never log it.
    pub(crate) fn url_with_key(&self) -> String {
        let separator = if self.endpoint.contains('?') {
            '&'
        } else {
            '?'
        };
        format!(
            "{}{separator}key={}",
            self.endpoint,
            percent_encode(&self.api_key)
        )
    }
}

/// Percent-encode everything but RFC 3986 unreserved characters (keys are
/// normally `[A-Za-z0-9_-]`, but a stray `&` or space must not break the URL).
fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| {
            pairs
                .iter()
                .find(|(key, _)| *key == name)
                .map(|(_, value)| (*value).to_owned())
        }
    }

    #[test]
    fn gemini_missing_key_is_an_error_naming_the_variable() {
        for pairs in [&[][..], &[("GEMINI_API_KEY", "  ")][..]] {
            let error = LiveConfig::from_vars(None, vars(pairs)).unwrap_err();
            assert_eq!(error, LiveError::MissingKey);
            assert!(error.to_string().contains("GEMINI_API_KEY"), "{error}");
        }
    }

    #[test]
    fn gemini_config_reads_overrides_and_defaults() {
        let config = LiveConfig::from_vars(
            None,
            vars(&[
                ("GEMINI_API_KEY", "k-1"),
                ("GEMINI_LIVE_ENDPOINT", "ws://127.0.0.1:9/live"),
                ("GEMINI_LIVE_MODEL", "gemini-test"),
                ("GEMINI_LIVE_VOICE", "Kore"),
            ]),
        )
        .unwrap();
        assert_eq!(config.endpoint, "ws://127.0.0.1:9/live");
        assert_eq!(config.model_resource(), "models/gemini-test");
        assert_eq!(config.voice.as_deref(), Some("Kore"));

        let config = LiveConfig::from_vars(
            Some("models/explicit".into()),
            vars(&[("GEMINI_API_KEY", "k"), ("GEMINI_LIVE_MODEL", "ignored")]),
        )
        .unwrap();
        assert_eq!(config.model_resource(), "models/explicit");
        assert_eq!(config.endpoint, DEFAULT_ENDPOINT);
    }

    #[test]
    fn gemini_config_rejects_non_websocket_endpoints() {
        let error = LiveConfig::from_vars(
            None,
            vars(&[
                ("GEMINI_API_KEY", "k"),
                ("GEMINI_LIVE_ENDPOINT", "https://example.invalid/live"),
            ]),
        )
        .unwrap_err();
        assert!(matches!(error, LiveError::Config(ref m) if m.contains("GEMINI_LIVE_ENDPOINT")));
    }

    #[test]
    fn gemini_key_is_encoded_in_the_url_and_redacted_in_debug() {
        let mut config = LiveConfig::new("a b&c", "m");
        config.endpoint = "ws://h/p".into();
        assert_eq!(config.url_with_key(), "ws://h/p?key=a%20b%26c");
        config.endpoint = "ws://h/p?alt=json".into();
        assert_eq!(config.url_with_key(), "ws://h/p?alt=json&key=a%20b%26c");
        let debug = format!("{config:?}");
        assert!(!debug.contains("a b&c"), "{debug}");
        assert!(debug.contains("<redacted>"));
    }
}
