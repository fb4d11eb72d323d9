//! One error type for every voice engine, with messages that name the fix.

use std::path::PathBuf;

/// What went wrong in the voice path.
#[derive(Debug, thiserror::Error)]
pub enum VoiceError {
    /// A model file is not where the configuration says it is.
    #[error(
        "{asset} model file not found at {path}; run `scripts/setup-models.sh {asset}` to fetch it"
    )]
    MissingAsset { asset: &'static str, path: PathBuf },
    /// A model or library was found but could not be loaded.
    #[error("could not load {what}: {detail}")]
    Load { what: &'static str, detail: String },
    /// The engine failed while running.
    #[error("{engine} failed: {detail}")]
    Inference {
        engine: &'static str,
        detail: String,
    },
    /// The caller's audio cannot be used (odd byte count, bad sample rate, ...).
    #[error("invalid audio: {0}")]
    InvalidAudio(String),
}
