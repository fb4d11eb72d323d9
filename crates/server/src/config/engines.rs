//! The `[audio]` (voice pipeline) and `[local]` (embedded model) settings.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Settings of the voice pipeline (VAD, pacing, engines' files).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct AudioConfig {
    /// Directory of the voice models; `<data dir>/models` when unset.
    pub models_dir: Option<PathBuf>,
    /// Frame score (0..1) at or above which audio counts as voiced.
    pub vad_threshold: f32,
    /// Audio kept from before speech was detected.
    pub vad_prefix_padding_ms: u64,
    /// Silence that ends the user's turn.
    pub vad_silence_duration_ms: u64,
    /// Voiced audio needed before speech counts (and can interrupt the assistant).
    pub vad_min_speech_ms: u64,
    /// An utterance this long is transcribed without waiting for a pause.
    pub max_utterance_ms: u64,
    /// Audio sent ahead of real time: a cushion against network jitter, and
    /// the most the listener can hear after an interruption.
    pub playback_lead_ms: u64,
    /// Speak replies on the JSON chat sockets without `?tts=1`.
    pub tts: bool,
    /// Seconds of audio a voice socket may send ahead of real time (a
    /// client catching up after a stall) before it is throttled.
    pub input_burst_secs: f64,
    /// Long-run input rate a voice socket may keep, as a multiple of real
    /// time; faster closes it with 1008.
    pub max_input_speed: f64,
    /// Binary frames per second a voice socket may send (a browser sends
    /// 50); faster closes it with 1008.
    pub max_frames_per_second: u32,
    /// Added to the system prompt of voice turns: replies are listened to, not read.
    pub voice_instructions: String,
}

/// Default guidance for spoken replies.
pub const DEFAULT_VOICE_INSTRUCTIONS: &str = "The user is talking to you by voice and hears your \
replies through text-to-speech: answer in one to three short spoken sentences, with no markdown, \
lists, code or emoji.";

impl Default for AudioConfig {
    fn default() -> Self {
        let vad = colloquy_voice::vad::VadConfig::default();
        Self {
            models_dir: None,
            vad_threshold: vad.threshold,
            vad_prefix_padding_ms: vad.prefix_padding_ms,
            vad_silence_duration_ms: vad.silence_duration_ms,
            vad_min_speech_ms: vad.min_speech_ms,
            max_utterance_ms: vad.max_utterance_ms,
            playback_lead_ms: 250,
            tts: false,
            input_burst_secs: 10.0,
            max_input_speed: 4.0,
            max_frames_per_second: 200,
            voice_instructions: DEFAULT_VOICE_INSTRUCTIONS.into(),
        }
    }
}

impl AudioConfig {
    /// The VAD settings.
    pub fn vad(&self) -> colloquy_voice::vad::VadConfig {
        colloquy_voice::vad::VadConfig {
            threshold: self.vad_threshold,
            prefix_padding_ms: self.vad_prefix_padding_ms,
            silence_duration_ms: self.vad_silence_duration_ms,
            min_speech_ms: self.vad_min_speech_ms,
            max_utterance_ms: self.max_utterance_ms,
        }
    }
}

/// Settings of the embedded local model.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct LocalModelConfig {
    /// GGUF file; `<data dir>/models/SmolLM2-135M-Instruct.Q4_1.gguf` when unset.
    pub model_path: Option<PathBuf>,
    pub workers: usize,
    pub threads_per_worker: usize,
    pub queue_capacity: usize,
    pub context_tokens: u32,
    pub temperature: f32,
    pub top_p: f32,
    pub repeat_penalty: f32,
    /// Use a Q8_0 copy of a Q4_1 model (derived once next to it) for faster prompt processing.
    pub fast_prefill: bool,
    /// Longest a follow-up turn waits for the worker holding its history.
    pub sticky_wait_ms: u64,
    /// Offer tools to the local model (a grammar holds its calls to their schemas).
    pub tools: bool,
}

impl Default for LocalModelConfig {
    fn default() -> Self {
        let defaults = colloquy_ai::LocalConfig::default();
        Self {
            model_path: None,
            workers: defaults.workers,
            threads_per_worker: defaults.threads_per_worker,
            queue_capacity: defaults.queue_capacity,
            context_tokens: defaults.context_tokens,
            temperature: defaults.temperature,
            top_p: defaults.top_p,
            repeat_penalty: defaults.repeat_penalty,
            fast_prefill: defaults.fast_prefill,
            sticky_wait_ms: defaults.sticky_wait_ms,
            tools: defaults.tools,
        }
    }
}
