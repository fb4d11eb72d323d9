//! Text-to-speech behind a trait, so a cloud engine can sit beside Piper.
//!
//! The local engine, `PiperTts` (feature `piper`), runs a Piper voice with
//! ONNX Runtime and takes its phonemes from espeak-ng. Its parts:
//! - `text`: splits text into sentences and clauses, keeping the punctuation
//!   that espeak-ng drops but the voice was trained with;
//! - `espeak`: the few espeak-ng calls that turn a clause into IPA phonemes;
//! - `phonemes`: the voice's config and the phoneme-to-id mapping;
//! - `piper`: loading the voice and running it.

use crate::VoiceError;

#[cfg(feature = "piper")]
mod espeak;
#[cfg(feature = "piper")]
mod phonemes;
#[cfg(feature = "piper")]
mod piper;
#[cfg(feature = "piper")]
mod text;

#[cfg(feature = "piper")]
pub use piper::{PiperPaths, PiperTts};

/// Turns text into speech.
pub trait TextToSpeech: Send + Sync {
    /// Sample rate of the audio [`TextToSpeech::synthesize`] returns.
    fn sample_rate(&self) -> u32;
    /// Synthesizes one sentence or clause into mono f32 samples in [-1, 1]
    /// at [`TextToSpeech::sample_rate`]. Blocking and CPU-heavy: call it from
    /// a blocking thread.
    fn synthesize(&self, text: &str) -> Result<Vec<f32>, VoiceError>;
    /// [`TextToSpeech::synthesize`] without any randomness, so the same text
    /// always gives the same samples: input for tests and benchmarks that
    /// must repeat. An engine without randomness synthesizes as usual.
    fn synthesize_repeatable(&self, text: &str) -> Result<Vec<f32>, VoiceError> {
        self.synthesize(text)
    }
}
