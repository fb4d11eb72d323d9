//! Voice: the engines (speech-to-text, text-to-speech) chosen at start, the
//! per-connection [`pipeline`] that turns speech into turns and replies into
//! speech, the binary voice socket of seed 004 ([`socket`]) with its audio
//! input (`reader`) and its Gemini Live bridge ([`gemini`]), the coaching
//! session [`context`], and turn [`timings`].

pub mod context;
pub mod gemini;
mod live_tools;
pub mod pipeline;
pub mod playback;
mod reader;

pub(crate) use reader::AudioBudget;
pub mod socket;
pub mod timings;

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use colloquy_voice::{SpeechToText, TextToSpeech};

use crate::config::Config;
use timings::VoiceMetrics;

/// The local speech engines, shared by every connection.
#[derive(Clone)]
pub struct VoiceEngines {
    pub stt: Arc<dyn SpeechToText>,
    pub tts: Arc<dyn TextToSpeech>,
}

/// The voice engine this deployment uses.
pub enum VoiceBackend {
    /// Whisper + Piper in process.
    Local(VoiceEngines),
    /// Gemini Live: the user's audio streamed to Google, its speech back.
    GeminiLive(Arc<colloquy_ai::LiveConfig>),
    /// No voice: audio is refused with a clear error.
    Disabled,
}

/// The voice side of the server.
pub struct VoiceService {
    backend: VoiceBackend,
    pub metrics: Arc<VoiceMetrics>,
    /// One permit per voice session. Each session runs at most one
    /// transcription and one synthesis at a time, so this also bounds the
    /// blocking threads queued behind the engines.
    sessions: Arc<Semaphore>,
}

impl VoiceService {
    /// A service with `backend`, serving at most `max_sessions` at once.
    pub fn new(backend: VoiceBackend, max_sessions: usize) -> Self {
        Self {
            backend,
            metrics: VoiceMetrics::new(),
            sessions: Arc::new(Semaphore::new(max_sessions)),
        }
    }

    /// A place for one more voice session; `None` when `max_voice_sessions`
    /// are running. The session holds it until it ends.
    pub fn open_session(&self) -> Option<OwnedSemaphorePermit> {
        self.sessions.clone().try_acquire_owned().ok()
    }

    /// Loads the configured engines (blocking: reads model files). A
    /// selected engine that cannot load stops the start, naming the file
    /// and the fix.
    pub fn load(config: &Config) -> anyhow::Result<Self> {
        let choice = config
            .voice
            .as_deref()
            .unwrap_or(if cfg!(feature = "voice-local") {
                "local"
            } else {
                "none"
            });
        let backend = match choice {
            "none" => VoiceBackend::Disabled,
            "local" => VoiceBackend::Local(load_local(config)?),
            "gemini-live" => {
                let mut live = colloquy_ai::LiveConfig::from_env(config.gemini_live_model.clone())
                    .map_err(|error| match error {
                        colloquy_ai::LiveError::MissingKey => anyhow::anyhow!(
                            "COLLOQUY_VOICE=gemini-live needs GEMINI_API_KEY in the environment"
                        ),
                        other => anyhow::anyhow!("invalid Gemini Live configuration: {other}"),
                    })?;
                if let Some(endpoint) = &config.gemini_live_endpoint {
                    live.endpoint = endpoint.clone();
                }
                tracing::info!(model = %live.model, "voice through Gemini Live");
                VoiceBackend::GeminiLive(Arc::new(live))
            }
            other => anyhow::bail!("voice engine `{other}` is not available in this build"),
        };
        Ok(Self::new(backend, config.max_voice_sessions))
    }

    /// The local engines, when they are the configured backend.
    pub fn local(&self) -> Option<&VoiceEngines> {
        match &self.backend {
            VoiceBackend::Local(engines) => Some(engines),
            VoiceBackend::GeminiLive(_) | VoiceBackend::Disabled => None,
        }
    }

    /// The configured backend.
    pub fn backend(&self) -> &VoiceBackend {
        &self.backend
    }

    /// A short name for logs and `/api/config`.
    pub fn name(&self) -> &'static str {
        match self.backend {
            VoiceBackend::Local(_) => "local",
            VoiceBackend::GeminiLive(_) => "gemini-live",
            VoiceBackend::Disabled => "none",
        }
    }
}

#[cfg(feature = "voice-local")]
fn load_local(config: &Config) -> anyhow::Result<VoiceEngines> {
    use anyhow::Context;
    use colloquy_voice::{
        stt::whisper::WhisperStt,
        tts::{PiperPaths, PiperTts},
    };
    let dir = config.voice_models_dir();
    let stt = WhisperStt::load(&dir.join("whisper-tiny.en")).context("loading speech-to-text")?;
    let tts = PiperTts::load(&PiperPaths::in_dir(&dir)).context("loading text-to-speech")?;
    tracing::info!(models = %dir.display(), "local voice engines ready");
    Ok(VoiceEngines {
        stt: Arc::new(stt),
        tts: Arc::new(tts),
    })
}

#[cfg(not(feature = "voice-local"))]
fn load_local(_config: &Config) -> anyhow::Result<VoiceEngines> {
    anyhow::bail!(
        "COLLOQUY_VOICE=local needs a build with the local voice engines \
         (`cargo run --release --features voice-local`); set COLLOQUY_VOICE=none to run without voice"
    )
}
