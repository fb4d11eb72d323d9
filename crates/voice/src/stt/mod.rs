//! Speech-to-text behind a trait, so a cloud engine can sit beside Whisper.

use crate::VoiceError;

/// Turns one utterance into text.
pub trait SpeechToText: Send + Sync {
    /// Transcribes mono audio at [`crate::INPUT_SAMPLE_RATE`] (f32 in [-1, 1]).
    /// Blocking and CPU-heavy: call it from a blocking thread.
    fn transcribe(&self, audio: &[f32]) -> Result<String, VoiceError>;
}

#[cfg(feature = "whisper")]
pub mod whisper;
