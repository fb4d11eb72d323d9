//! Colloquy's voice path, independent of any transport: PCM16 framing,
//! resampling, voice activity detection with hysteresis, and the speech-to-text
//! and text-to-speech engines behind traits so a cloud engine can sit beside
//! the local ones. Engines are blocking: callers run them off the async runtime.

pub mod clause;
pub mod error;
pub mod pcm;
pub mod resample;
pub mod stt;
pub mod tts;
pub mod vad;
pub mod wer;

pub use error::VoiceError;
#[cfg(feature = "whisper")]
pub use stt::whisper::WhisperStt;
pub use stt::SpeechToText;
pub use tts::TextToSpeech;

/// Sample rate of the audio the voice path takes in (microphone, STT, VAD).
pub const INPUT_SAMPLE_RATE: u32 = 16_000;
/// Sample rate of the audio the voice path sends out (TTS playback).
pub const OUTPUT_SAMPLE_RATE: u32 = 24_000;
