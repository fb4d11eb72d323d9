//! Local speech-to-text: Whisper tiny.en, pure Rust on the CPU (candle).
//!
//! The model comes as CTranslate2 files (`scripts/setup-models.sh whisper`
//! puts them in `<models>/whisper-tiny.en/`): `model.bin` (the weights,
//! read by `ct2` and mapped onto candle's Whisper by `weights`),
//! `vocabulary.txt` (token ids to text, `vocab`) and `config.json` (the
//! token ids never to decode). Audio becomes a log-mel spectrogram (`mel`),
//! the encoder reads it, and a greedy decoder (`decode`) writes English text
//! without timestamps.
//!
//! # Speed
//! Whisper always encodes a 30 s window, most of it padding for a spoken
//! turn. By default the encoder runs over the audio plus 2 s of that padding
//! only ([`EncoderWindow::Trimmed`]), which is several times faster on short
//! utterances; [`EncoderWindow::Full`] keeps the reference behaviour.
//!
//! # Silence and hallucinations
//! Whisper makes up text for silence and noise ("Thank you.", `[BLANK_AUDIO]`,
//! "(music)"). Three guards, cheapest first, make such input give `""`:
//! 1. a window whose peak stays below -60 dBFS is not run at all;
//! 2. the reference rule: a window is dropped when the probability of
//!    `<|nocaptions|>` at the start is above 0.6 and the average token
//!    log-probability below -1;
//! 3. sound annotations in brackets or parentheses are removed, and a result
//!    with no letter or digit left is empty.
//!
//! Greedy decoding can also loop ("the the the ..."): a block of tokens
//! repeated over 12 tokens' worth is cut to its first occurrence.
//!
//! # Input
//! Nothing panics on any input: empty audio is `""`, NaN and infinite samples
//! become silence, samples are clamped to [-1, 1], audio over 30 s is split
//! into windows at the quietest 20 ms near each 30 s mark, and audio over
//! [`MAX_AUDIO_SECONDS`] is truncated with a warning.

mod ct2;
mod decode;
mod decoder;
mod mel;
mod vocab;
mod weights;

use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Instant;

use candle_core::{Device, Tensor};
use candle_transformers::models::whisper::model::Whisper;

use self::decode::{Decoded, Suppression};
use self::decoder::TextDecoder;
use self::mel::{LogMel, HOP, SAMPLE_RATE};
use self::vocab::Vocabulary;
use super::SpeechToText;
use crate::VoiceError;

/// Name of the model's directory under the models directory.
pub const MODEL_DIR_NAME: &str = "whisper-tiny.en";
/// Longest audio transcribed in one call; the rest is dropped with a warning.
/// Five minutes is far beyond one spoken turn and bounds the CPU one call takes.
pub const MAX_AUDIO_SECONDS: usize = 300;

const ASSET: &str = "whisper";
const ENGINE: &str = "whisper";
const MODEL_FILE: &str = "model.bin";
const VOCABULARY_FILE: &str = "vocabulary.txt";
const CONFIG_FILE: &str = "config.json";

/// Samples in one of Whisper's 30 s windows.
const WINDOW_SAMPLES: usize = 30 * SAMPLE_RATE;
/// Mel frames in one 30 s window.
const WINDOW_FRAMES: usize = WINDOW_SAMPLES / HOP;
/// Long audio is cut within the last 5 s of each window.
const CUT_SEARCH_SAMPLES: usize = 5 * SAMPLE_RATE;
/// 20 ms: the unit in which the quietest cut point is looked for.
const CUT_FRAME_SAMPLES: usize = SAMPLE_RATE / 50;
/// -60 dBFS: a window whose peak stays below this is silence.
const SILENCE_PEAK: f32 = 1e-3;
/// The reference decoder's "no speech" rule: both must hold to drop a window.
const NO_SPEECH_THRESHOLD: f32 = 0.6;
const LOGPROB_THRESHOLD: f32 = -1.0;

/// How much of the 30 s input window the encoder runs over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EncoderWindow {
    /// Always the full 30 s, as the model was trained: slowest on short audio.
    Full,
    /// The audio plus `margin_ms` of the silence that pads it (capped at
    /// 30 s). The margin lets the model hear that the speech has ended.
    Trimmed {
        /// Silence kept after the audio, in milliseconds.
        margin_ms: u32,
    },
}

impl Default for EncoderWindow {
    /// Trimmed with a 2 s margin: as accurate as the full window on our
    /// spoken-sentence tests, and several times faster for short turns.
    fn default() -> Self {
        Self::Trimmed { margin_ms: 2_000 }
    }
}

/// Whisper speech-to-text. Load it once and share it (`Arc`): calls are
/// serialised on one model, each using the machine's cores.
pub struct WhisperStt {
    /// candle's model, for its encoder: it keeps per-call caches, hence
    /// `&mut` use behind a lock (which also serialises whole calls).
    model: Mutex<Whisper>,
    decoder: TextDecoder,
    mel: LogMel,
    vocab: Vocabulary,
    suppression: Suppression,
    window: EncoderWindow,
}

impl fmt::Debug for WhisperStt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WhisperStt")
            .field("vocabulary", &self.vocab.len())
            .field("window", &self.window)
            .finish_non_exhaustive()
    }
}

impl WhisperStt {
    /// Loads the model from `model_dir` (holding `model.bin`,
    /// `vocabulary.txt` and `config.json`). A missing file is
    /// [`VoiceError::MissingAsset`]; an unreadable one [`VoiceError::Load`].
    pub fn load(model_dir: &Path) -> Result<Self, VoiceError> {
        let started = Instant::now();
        let file = |name: &str| -> Result<PathBuf, VoiceError> {
            let path = model_dir.join(name);
            if path.is_file() {
                Ok(path)
            } else {
                Err(VoiceError::MissingAsset { asset: ASSET, path })
            }
        };
        let (model_path, vocab_path, config_path) = (
            file(MODEL_FILE)?,
            file(VOCABULARY_FILE)?,
            file(CONFIG_FILE)?,
        );

        let bytes = std::fs::read(&model_path).map_err(|e| load_error(&model_path, e))?;
        let ct2 = ct2::Ct2File::parse(bytes).map_err(|e| load_error(&model_path, e))?;
        let (model, decoder) = weights::load(&ct2).map_err(|e| load_error(&model_path, e))?;
        drop(ct2); // the raw file is as large as the model: free it now

        let text = std::fs::read_to_string(&vocab_path).map_err(|e| load_error(&vocab_path, e))?;
        let vocab = Vocabulary::parse(&text).map_err(|e| load_error(&vocab_path, e))?;
        let vocab_size = model.config.vocab_size;
        if vocab.len() != vocab_size {
            let detail = format!("{} tokens, the model has {vocab_size}", vocab.len());
            return Err(load_error(&vocab_path, detail));
        }
        let (suppress, suppress_at_start) = std::fs::read_to_string(&config_path)
            .map_err(|e| load_error(&config_path, e))
            .and_then(|text| suppress_lists(&text).map_err(|e| load_error(&config_path, e)))?;
        let suppression =
            Suppression::new(vocab_size, vocab.specials(), &suppress, &suppress_at_start);

        let mel = LogMel::new(model.config.num_mel_bins);
        tracing::info!(
            elapsed_ms = started.elapsed().as_millis() as u64,
            layers = model.config.encoder_layers,
            width = model.config.d_model,
            "whisper model loaded"
        );
        Ok(Self {
            model: Mutex::new(model),
            decoder,
            mel,
            vocab,
            suppression,
            window: EncoderWindow::default(),
        })
    }

    /// Chooses how much of the 30 s window the encoder runs over.
    #[must_use]
    pub fn with_encoder_window(mut self, window: EncoderWindow) -> Self {
        self.window = window;
        self
    }

    /// Transcribes sanitised audio with the model locked.
    fn transcribe_locked(&self, model: &mut Whisper, audio: &[f32]) -> Result<String, VoiceError> {
        let specials = self.vocab.specials();
        let mut parts = Vec::new();
        for window in split_windows(audio) {
            if peak(window) < SILENCE_PEAK {
                tracing::debug!(samples = window.len(), "silent window skipped");
                continue;
            }
            let started = Instant::now();
            let n_frames = encoder_frames(self.window, window.len());
            let n_mels = model.config.num_mel_bins;
            let mel = self.mel.compute(window, n_frames);
            let mel = Tensor::from_vec(mel, (1, n_mels, n_frames), &Device::Cpu)
                .map_err(inference_error)?;
            let features = model.encoder.forward(&mel, true).map_err(inference_error)?;
            let encoded_at = Instant::now();
            let decoded = decode::greedy(&self.decoder, &features, specials, &self.suppression)
                .map_err(inference_error)?;
            tracing::debug!(
                samples = window.len(),
                frames = n_frames,
                tokens = decoded.tokens.len(),
                encode_ms = (encoded_at - started).as_millis() as u64,
                decode_ms = encoded_at.elapsed().as_millis() as u64,
                no_speech_prob = decoded.no_speech_prob,
                avg_logprob = decoded.avg_logprob,
                looped = decoded.looped,
                "window decoded"
            );
            if is_no_speech(&decoded) {
                tracing::debug!("window dropped as no speech");
                continue;
            }
            let text = clean_transcript(&self.vocab.decode(&decoded.tokens));
            if !text.is_empty() {
                parts.push(text);
            }
        }
        Ok(parts.join(" "))
    }
}

impl SpeechToText for WhisperStt {
    fn transcribe(&self, audio: &[f32]) -> Result<String, VoiceError> {
        if audio.is_empty() {
            return Ok(String::new());
        }
        let started = Instant::now();
        let audio = sanitize(audio);
        let mut model = self.model.lock().map_err(|_| VoiceError::Inference {
            engine: ENGINE,
            detail: "the model is unusable after an earlier failure".to_owned(),
        })?;
        // A panic inside the engine must not take the caller's thread down
        // (nor poison the lock): catch it here, where the state it may have
        // left half-written is reset.
        let result = catch_unwind(AssertUnwindSafe(|| {
            self.transcribe_locked(&mut model, &audio)
        }));
        let text = match result {
            Ok(text) => text?,
            Err(_) => {
                model.reset_kv_cache();
                return Err(VoiceError::Inference {
                    engine: ENGINE,
                    detail: "the engine panicked".to_owned(),
                });
            }
        };
        tracing::debug!(
            audio_ms = (audio.len() * 1000 / SAMPLE_RATE) as u64,
            elapsed_ms = started.elapsed().as_millis() as u64,
            chars = text.len(),
            "transcribed"
        );
        Ok(text)
    }
}

/// Mel frames the encoder gets for a window of `samples`.
fn encoder_frames(window: EncoderWindow, samples: usize) -> usize {
    match window {
        EncoderWindow::Full => WINDOW_FRAMES,
        EncoderWindow::Trimmed { margin_ms } => {
            let audio = samples.div_ceil(HOP);
            let margin = margin_ms as usize * SAMPLE_RATE / 1000 / HOP;
            (audio + margin).clamp(2, WINDOW_FRAMES)
        }
    }
}

fn load_error(path: &Path, detail: impl fmt::Display) -> VoiceError {
    VoiceError::Load {
        what: "whisper model",
        detail: format!("{}: {detail}", path.display()),
    }
}

fn inference_error(e: candle_core::Error) -> VoiceError {
    VoiceError::Inference {
        engine: ENGINE,
        detail: e.to_string(),
    }
}

/// The `suppress_ids` and `suppress_ids_begin` lists of CTranslate2's
/// `config.json` (absent lists are empty). Its `lang_ids` are ignored: an
/// English-only model takes no language token.
fn suppress_lists(config: &str) -> Result<(Vec<u32>, Vec<u32>), String> {
    let json: serde_json::Value = serde_json::from_str(config).map_err(|e| e.to_string())?;
    let list = |key: &str| -> Result<Vec<u32>, String> {
        match json.get(key) {
            None => Ok(Vec::new()),
            Some(value) => value
                .as_array()
                .ok_or_else(|| format!("{key} is not a list"))?
                .iter()
                .map(|id| {
                    id.as_u64()
                        .and_then(|id| u32::try_from(id).ok())
                        .ok_or_else(|| format!("{key} holds {id}, not a token id"))
                })
                .collect(),
        }
    };
    Ok((list("suppress_ids")?, list("suppress_ids_begin")?))
}

/// Finite samples clamped to [-1, 1], at most [`MAX_AUDIO_SECONDS`] long.
fn sanitize(audio: &[f32]) -> Vec<f32> {
    let limit = MAX_AUDIO_SECONDS * SAMPLE_RATE;
    if audio.len() > limit {
        tracing::warn!(
            seconds = audio.len() / SAMPLE_RATE,
            max_seconds = MAX_AUDIO_SECONDS,
            "audio too long for one transcription; the rest is dropped"
        );
    }
    let audio = &audio[..audio.len().min(limit)];
    let bad = audio.iter().filter(|s| !s.is_finite()).count();
    if bad > 0 {
        tracing::warn!(
            samples = bad,
            "non-finite audio samples replaced with silence"
        );
    }
    audio
        .iter()
        .map(|&s| {
            if s.is_finite() {
                s.clamp(-1.0, 1.0)
            } else {
                0.0
            }
        })
        .collect()
}

/// Splits audio into windows of at most 30 s, each cut at the quietest
/// 20 ms of its last 5 s so that a word is rarely split in two.
fn split_windows(audio: &[f32]) -> Vec<&[f32]> {
    let mut windows = Vec::new();
    let mut rest = audio;
    while rest.len() > WINDOW_SAMPLES {
        let search_from = WINDOW_SAMPLES - CUT_SEARCH_SAMPLES;
        let cut = (search_from..WINDOW_SAMPLES - CUT_FRAME_SAMPLES)
            .step_by(CUT_FRAME_SAMPLES)
            .min_by(|&a, &b| {
                energy(&rest[a..a + CUT_FRAME_SAMPLES])
                    .total_cmp(&energy(&rest[b..b + CUT_FRAME_SAMPLES]))
            })
            .map_or(WINDOW_SAMPLES, |start| start + CUT_FRAME_SAMPLES / 2);
        let (window, tail) = rest.split_at(cut);
        windows.push(window);
        rest = tail;
    }
    if !rest.is_empty() {
        windows.push(rest);
    }
    windows
}

fn energy(samples: &[f32]) -> f32 {
    samples.iter().map(|s| s * s).sum()
}

fn peak(samples: &[f32]) -> f32 {
    samples.iter().fold(0.0, |m, s| m.max(s.abs()))
}

/// The reference decoder's rule for a window without speech: nothing
/// decoded, or "no speech" likely and the text itself unlikely.
fn is_no_speech(decoded: &Decoded) -> bool {
    decoded.tokens.is_empty()
        || (decoded.no_speech_prob > NO_SPEECH_THRESHOLD && decoded.avg_logprob < LOGPROB_THRESHOLD)
}

/// Removes sound annotations (`[BLANK_AUDIO]`, `(upbeat music)`) and extra
/// whitespace; a text with no letter or digit left is empty.
fn clean_transcript(text: &str) -> String {
    let mut kept = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        let close = match c {
            '[' => Some(']'),
            '(' => Some(')'),
            _ => None,
        };
        if let Some(end) = close.and_then(|close| rest.find(close)) {
            rest = &rest[end + 1..];
            kept.push(' ');
            continue;
        }
        kept.push(c);
        rest = &rest[c.len_utf8()..];
    }
    if !kept.chars().any(char::is_alphanumeric) {
        return String::new();
    }
    kept.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn annotations_and_punctuation_only_output_are_removed() {
        assert_eq!(clean_transcript(" [BLANK_AUDIO]"), "");
        assert_eq!(clean_transcript(" (upbeat music)"), "");
        assert_eq!(clean_transcript(" ..."), "");
        assert_eq!(clean_transcript(" ♪ ♪"), "");
        assert_eq!(
            clean_transcript(" Hello [MUSIC] there,  friend."),
            "Hello there, friend."
        );
        assert_eq!(clean_transcript(" It costs (about"), "It costs (about");
        assert_eq!(clean_transcript(" Café au lait."), "Café au lait.");
    }

    #[test]
    fn sanitize_silences_non_finite_samples_and_clamps() {
        let out = sanitize(&[f32::NAN, 2.0, -3.0, 0.25, f32::INFINITY]);
        assert_eq!(out, [0.0, 1.0, -1.0, 0.25, 0.0]);
    }

    #[test]
    fn long_audio_is_split_at_a_quiet_point_into_windows_of_30_s_at_most() {
        // 70 s of a loud tone with a silent 20 ms gap at 28 s.
        let mut audio = vec![0.5f32; 70 * SAMPLE_RATE];
        let gap = 28 * SAMPLE_RATE;
        audio[gap..gap + CUT_FRAME_SAMPLES].fill(0.0);
        let windows = split_windows(&audio);
        assert_eq!(windows[0].len(), gap + CUT_FRAME_SAMPLES / 2);
        assert!(windows
            .iter()
            .all(|w| w.len() <= WINDOW_SAMPLES && !w.is_empty()));
        assert_eq!(windows.iter().map(|w| w.len()).sum::<usize>(), audio.len());
        assert_eq!(windows.len(), 3);
        assert_eq!(split_windows(&[0.1; 10]).len(), 1);
        assert!(split_windows(&[]).is_empty());
    }

    #[test]
    fn the_no_speech_rule_needs_both_signals() {
        let decoded = |tokens: Vec<u32>, no_speech_prob, avg_logprob| Decoded {
            tokens,
            no_speech_prob,
            avg_logprob,
            looped: false,
        };
        assert!(is_no_speech(&decoded(vec![], 0.0, 0.0)));
        assert!(is_no_speech(&decoded(vec![1], 0.9, -1.5)));
        assert!(!is_no_speech(&decoded(vec![1], 0.9, -0.2)));
        assert!(!is_no_speech(&decoded(vec![1], 0.1, -1.5)));
    }

    #[test]
    fn suppress_lists_come_from_the_config_and_ignore_lang_ids() {
        let config = r#"{"lang_ids": [1, 2], "suppress_ids": [3, 4], "suppress_ids_begin": [220]}"#;
        assert_eq!(suppress_lists(config).unwrap(), (vec![3, 4], vec![220]));
        assert_eq!(suppress_lists("{}").unwrap(), (vec![], vec![]));
        assert!(suppress_lists(r#"{"suppress_ids": [-1]}"#).is_err());
        assert!(suppress_lists("not json").is_err());
    }

    #[test]
    fn a_missing_model_file_names_the_setup_script() {
        let dir = std::env::temp_dir().join("colloquy-whisper-missing");
        let err = WhisperStt::load(&dir).unwrap_err();
        assert!(
            matches!(&err, VoiceError::MissingAsset { asset: "whisper", path } if path.ends_with(MODEL_FILE)),
            "{err:?}"
        );
        assert!(err.to_string().contains("scripts/setup-models.sh whisper"));
    }

    #[test]
    fn the_trimmed_window_covers_the_audio_plus_its_margin() {
        let default = EncoderWindow::default();
        assert_eq!(encoder_frames(default, SAMPLE_RATE), 300);
        assert_eq!(encoder_frames(default, SAMPLE_RATE + 1), 301);
        assert_eq!(encoder_frames(default, WINDOW_SAMPLES), WINDOW_FRAMES);
        assert_eq!(
            encoder_frames(EncoderWindow::Trimmed { margin_ms: 0 }, 1),
            2
        );
        assert_eq!(encoder_frames(EncoderWindow::Full, 1), WINDOW_FRAMES);
    }
}
