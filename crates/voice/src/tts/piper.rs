//! Piper, the local text-to-speech engine: a VITS voice in ONNX run by ONNX
//! Runtime, fed with espeak-ng phonemes.
//!
//! ONNX Runtime is a shared library loaded at run time from the path in
//! [`PiperPaths`] (no download or system install at build time). Loading it and
//! the voice takes about a second, so a [`PiperTts`] is built once and shared;
//! each [`TextToSpeech::synthesize`] call then phonemizes the text sentence by
//! sentence and runs the model once per sentence.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Instant;

use ort::environment::Environment;
use ort::session::builder::GraphOptimizationLevel;
use ort::session::{Session, SessionInputValue};
use ort::value::Tensor;

use super::phonemes::VoiceConfig;
use super::text::{self, Sentence};
use super::{espeak, TextToSpeech};
use crate::VoiceError;

/// Silence between two sentences of one call: about a breath.
const SENTENCE_PAUSE_SECONDS: f32 = 0.15;
/// Peak level each sentence is scaled to, as Piper does, with headroom for
/// resampling overshoot.
const TARGET_PEAK: f32 = 0.9;
/// Below this peak a sentence is treated as silence and left alone, rather
/// than having its noise amplified.
const SILENCE_PEAK: f32 = 1e-3;
/// Most ONNX Runtime threads one synthesis uses: the voice path shares the
/// machine with speech-to-text and the language model.
const MAX_THREADS: usize = 4;

/// Where the files of the Piper engine are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PiperPaths {
    /// The voice model (`.onnx`).
    pub model: PathBuf,
    /// The voice config (`.onnx.json`): sample rate, phoneme ids, inference settings.
    pub config: PathBuf,
    /// The ONNX Runtime shared library (`libonnxruntime.so.1`, version 1.30 or later).
    pub onnxruntime: PathBuf,
}

impl PiperPaths {
    /// The voice `scripts/setup-models.sh piper` installs.
    pub const DEFAULT_VOICE: &'static str = "en_US-joe-medium";

    /// The layout `scripts/setup-models.sh piper onnxruntime` creates under
    /// `models_dir`: `piper/<voice>.onnx`, `piper/<voice>.onnx.json` and
    /// `onnxruntime/libonnxruntime.so.1`.
    pub fn in_dir(models_dir: impl AsRef<Path>) -> Self {
        let dir = models_dir.as_ref();
        let voice = dir.join("piper").join(Self::DEFAULT_VOICE);
        Self {
            model: voice.with_extension("onnx"),
            config: voice.with_extension("onnx.json"),
            onnxruntime: dir.join("onnxruntime").join("libonnxruntime.so.1"),
        }
    }

    /// Fails with [`VoiceError::MissingAsset`] naming the first file that is
    /// not there, and the setup asset that provides it.
    fn check_present(&self) -> Result<(), VoiceError> {
        for (asset, path) in [
            ("piper", &self.model),
            ("piper", &self.config),
            ("onnxruntime", &self.onnxruntime),
        ] {
            if !path.is_file() {
                return Err(VoiceError::MissingAsset {
                    asset,
                    path: path.clone(),
                });
            }
        }
        Ok(())
    }
}

/// A loaded Piper voice. `Send + Sync`: share it behind an `Arc`; calls to
/// [`TextToSpeech::synthesize`] on one instance run one at a time.
pub struct PiperTts {
    config: VoiceConfig,
    /// ONNX Runtime's `run` takes `&mut`; the lock is held only for the run.
    session: Mutex<Session>,
    /// Whether the model has a speaker input (multi-speaker voices).
    has_speaker_id: bool,
}

impl std::fmt::Debug for PiperTts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PiperTts")
            .field("sample_rate", &self.config.sample_rate)
            .field("espeak_voice", &self.config.espeak_voice)
            .finish_non_exhaustive()
    }
}

impl PiperTts {
    /// Loads the voice: checks the files, reads the config, checks espeak-ng
    /// knows the voice's language, loads ONNX Runtime (once per process) and
    /// builds the inference session. Blocking; takes about a second.
    pub fn load(paths: &PiperPaths) -> Result<Self, VoiceError> {
        let started = Instant::now();
        paths.check_present()?;
        let json = std::fs::read_to_string(&paths.config).map_err(|e| VoiceError::Load {
            what: "Piper voice config",
            detail: format!("{}: {e}", paths.config.display()),
        })?;
        let config = VoiceConfig::parse(&json).map_err(|detail| VoiceError::Load {
            what: "Piper voice config",
            detail: format!("{}: {detail}", paths.config.display()),
        })?;
        espeak::check_voice(&config.espeak_voice)?;

        let environment = onnxruntime::environment(&paths.onnxruntime)?;
        let session = build_session(&environment, &paths.model)?;
        let inputs: Vec<&str> = session.inputs().iter().map(|input| input.name()).collect();
        for required in ["input", "input_lengths", "scales"] {
            if !inputs.contains(&required) {
                return Err(VoiceError::Load {
                    what: "Piper voice model",
                    detail: format!("the model has no {required:?} input (it has {inputs:?})"),
                });
            }
        }
        let has_speaker_id = inputs.contains(&"sid");
        tracing::info!(
            model = %paths.model.display(),
            sample_rate = config.sample_rate,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "Piper voice loaded"
        );
        Ok(Self {
            config,
            session: Mutex::new(session),
            has_speaker_id,
        })
    }

    /// Runs the model on one sentence's ids; returns raw samples.
    fn infer(&self, ids: Vec<i64>, scales: [f32; 3]) -> Result<Vec<f32>, VoiceError> {
        let count = ids.len();
        let length =
            i64::try_from(count).map_err(|_| inference_error("the sentence is too long"))?;
        let mut inputs: Vec<(&str, SessionInputValue<'_>)> = vec![
            (
                "input",
                Tensor::from_array(([1, count], ids))
                    .map_err(inference)?
                    .into(),
            ),
            (
                "input_lengths",
                Tensor::from_array(([1], vec![length]))
                    .map_err(inference)?
                    .into(),
            ),
            (
                "scales",
                Tensor::from_array(([3], scales.to_vec()))
                    .map_err(inference)?
                    .into(),
            ),
        ];
        if self.has_speaker_id {
            inputs.push((
                "sid",
                Tensor::from_array(([1], vec![0_i64]))
                    .map_err(inference)?
                    .into(),
            ));
        }
        // A panic cannot leave a session half-updated from Rust's point of
        // view (the run happens inside ONNX Runtime), so a poisoned lock is
        // still usable.
        let mut session = self
            .session
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let outputs = session.run(inputs).map_err(inference)?;
        if outputs.len() == 0 {
            return Err(inference_error("the model returned no output"));
        }
        let (_shape, samples) = outputs[0].try_extract_tensor::<f32>().map_err(inference)?;
        Ok(samples.to_vec())
    }
}

impl TextToSpeech for PiperTts {
    fn sample_rate(&self) -> u32 {
        self.config.sample_rate
    }

    fn synthesize(&self, text: &str) -> Result<Vec<f32>, VoiceError> {
        self.synthesize_with(text, self.config.scales)
    }

    /// Piper samples noise for the voice's timbre and its durations
    /// (`noise_scale`, `noise_w`): with both at zero, the output repeats.
    fn synthesize_repeatable(&self, text: &str) -> Result<Vec<f32>, VoiceError> {
        let [_, length_scale, _] = self.config.scales;
        self.synthesize_with(text, [0.0, length_scale, 0.0])
    }
}

impl PiperTts {
    /// Synthesize `text` with the model's `scales` input set to `scales`.
    fn synthesize_with(&self, text: &str, scales: [f32; 3]) -> Result<Vec<f32>, VoiceError> {
        let started = Instant::now();
        let pause = (self.config.sample_rate as f32 * SENTENCE_PAUSE_SECONDS) as usize;
        let sentences = text::sentences(text);
        let mut audio = Vec::new();
        for sentence in &sentences {
            let phonemes = sentence_phonemes(&self.config.espeak_voice, sentence)?;
            let encoded = self.config.ids.encode(&phonemes);
            if encoded.skipped > 0 {
                tracing::debug!(
                    skipped = encoded.skipped,
                    "phonemes without an id in this voice were left out"
                );
            }
            if encoded.phonemes == 0 {
                continue;
            }
            let mut samples = self.infer(encoded.ids, scales)?;
            normalize(&mut samples);
            if !audio.is_empty() {
                audio.resize(audio.len() + pause, 0.0);
            }
            audio.append(&mut samples);
        }
        // Never the text itself: it is a user's conversation.
        tracing::debug!(
            sentences = sentences.len(),
            seconds = audio.len() as f32 / self.config.sample_rate as f32,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "synthesized speech"
        );
        Ok(audio)
    }
}

/// The IPA phonemes of one sentence, with the punctuation espeak-ng dropped
/// put back after each clause (`həlˈoʊ, wˈɜːld!`), as Piper's own patched
/// espeak-ng produces them.
fn sentence_phonemes(espeak_voice: &str, sentence: &Sentence) -> Result<String, VoiceError> {
    let mut parts: Vec<String> = Vec::with_capacity(sentence.clauses.len());
    for clause in &sentence.clauses {
        let mut ipa = espeak::phonemize(espeak_voice, &clause.text)?.join(" ");
        if ipa.is_empty() {
            continue;
        }
        if let Some(mark) = clause.end {
            ipa.push(mark);
        }
        parts.push(ipa);
    }
    Ok(parts.join(" "))
}

/// Makes raw model output safe to play: non-finite samples become silence and
/// the sentence is scaled to [`TARGET_PEAK`] (as Piper does), so every
/// sentence has the same loudness and nothing leaves [-1, 1].
fn normalize(samples: &mut [f32]) {
    let mut peak = 0.0_f32;
    for sample in samples.iter_mut() {
        if !sample.is_finite() {
            *sample = 0.0;
        }
        peak = peak.max(sample.abs());
    }
    if peak < SILENCE_PEAK {
        return;
    }
    let gain = TARGET_PEAK / peak;
    for sample in samples.iter_mut() {
        *sample = (*sample * gain).clamp(-1.0, 1.0);
    }
}

fn build_session(environment: &Environment, model: &Path) -> Result<Session, VoiceError> {
    let load_error = |e: String| VoiceError::Load {
        what: "Piper voice model",
        detail: format!("{}: {e}", model.display()),
    };
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(MAX_THREADS);
    let builder = Session::builder(environment).map_err(|e| load_error(e.to_string()))?;
    let builder = builder
        .with_optimization_level(GraphOptimizationLevel::Level3)
        .map_err(|e| load_error(e.to_string()))?
        .with_intra_threads(threads)
        .map_err(|e| load_error(e.to_string()))?
        .with_inter_threads(1)
        .map_err(|e| load_error(e.to_string()))?;
    // Idle threads would otherwise spin for a while after each sentence,
    // taking CPU from speech-to-text and the language model.
    let mut builder = builder
        .with_config_entry("session.intra_op.allow_spinning", "0")
        .map_err(|e| load_error(e.to_string()))?;
    builder
        .commit_from_file(model)
        .map_err(|e| load_error(e.to_string()))
}

fn inference(error: ort::Error) -> VoiceError {
    inference_error(&error.to_string())
}

fn inference_error(detail: &str) -> VoiceError {
    VoiceError::Inference {
        engine: "piper",
        detail: detail.to_owned(),
    }
}

/// The process-wide ONNX Runtime.
mod onnxruntime {
    use std::path::{Path, PathBuf};
    use std::sync::Mutex;

    use ort::environment::Environment;

    use crate::VoiceError;

    /// The loaded library's environment and where it came from. `ort` allows
    /// one library and one environment per process, so the first load wins
    /// and every later [`super::PiperTts`] shares them. A failed load leaves
    /// this empty, so a later call with a good path can still succeed.
    static LOADED: Mutex<Option<(Environment, PathBuf)>> = Mutex::new(None);

    /// Loads ONNX Runtime from `library` the first time; returns the shared
    /// environment.
    pub(super) fn environment(library: &Path) -> Result<Environment, VoiceError> {
        let load_error = |detail: String| VoiceError::Load {
            what: "onnxruntime",
            detail: format!("{}: {detail}", library.display()),
        };
        // `ort` resolves a relative path against the executable's directory
        // first; an absolute one means what the caller meant.
        let library = std::fs::canonicalize(library).map_err(|e| load_error(e.to_string()))?;
        let mut loaded = LOADED
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some((environment, from)) = loaded.as_ref() {
            if *from != library {
                tracing::warn!(
                    loaded = %from.display(),
                    requested = %library.display(),
                    "ONNX Runtime is already loaded in this process; using the loaded library"
                );
            }
            return Ok(environment.clone());
        }
        let environment = ort::init_from(&library)
            .map_err(|e| load_error(e.to_string()))?
            .with_name("colloquy")
            .with_telemetry(false)
            .build()
            .map_err(|e| load_error(e.to_string()))?;
        tracing::info!(library = %library.display(), "ONNX Runtime loaded");
        *loaded = Some((environment.clone(), library));
        Ok(environment)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_layout_names_the_setup_scripts_files() {
        let paths = PiperPaths::in_dir("models");
        assert_eq!(paths.model, Path::new("models/piper/en_US-joe-medium.onnx"));
        assert_eq!(
            paths.config,
            Path::new("models/piper/en_US-joe-medium.onnx.json")
        );
        assert_eq!(
            paths.onnxruntime,
            Path::new("models/onnxruntime/libonnxruntime.so.1")
        );
    }

    #[test]
    fn missing_files_name_the_asset_that_provides_them() {
        let err = PiperTts::load(&PiperPaths::in_dir("/nonexistent-colloquy-models")).unwrap_err();
        assert!(
            matches!(err, VoiceError::MissingAsset { asset: "piper", .. }),
            "{err}"
        );

        let dir = std::env::temp_dir().join(format!("colloquy-piper-paths-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let paths = PiperPaths {
            model: dir.join("voice.onnx"),
            config: dir.join("voice.onnx.json"),
            onnxruntime: dir.join("libonnxruntime.so.1"),
        };
        std::fs::write(&paths.model, b"").unwrap();
        std::fs::write(&paths.config, b"{}").unwrap();
        let err = PiperTts::load(&paths).unwrap_err();
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(
            matches!(
                err,
                VoiceError::MissingAsset {
                    asset: "onnxruntime",
                    ..
                }
            ),
            "{err}"
        );
        assert!(
            err.to_string()
                .contains("scripts/setup-models.sh onnxruntime"),
            "{err}"
        );
    }

    #[test]
    fn a_file_that_is_not_onnx_runtime_is_a_load_error_naming_it() {
        let dir = std::env::temp_dir().join(format!("colloquy-piper-ort-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let paths = PiperPaths {
            model: dir.join("voice.onnx"),
            config: dir.join("voice.onnx.json"),
            onnxruntime: dir.join("libonnxruntime.so.1"),
        };
        std::fs::write(&paths.model, b"not a model").unwrap();
        let config = r#"{"audio": {"sample_rate": 22050}, "phoneme_id_map": {"_": [0], "^": [1], "$": [2]}}"#;
        std::fs::write(&paths.config, config).unwrap();
        std::fs::write(&paths.onnxruntime, b"not a library").unwrap();
        let err = PiperTts::load(&paths).unwrap_err();
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(
            matches!(
                err,
                VoiceError::Load {
                    what: "onnxruntime",
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn clause_punctuation_is_put_back_into_the_phonemes() {
        let phonemes = |text: &str| -> Vec<String> {
            text::sentences(text)
                .iter()
                .map(|s| sentence_phonemes("en-us", s).unwrap())
                .collect()
        };
        // Piper's reference phonemizer gives "həlˈoʊ, wˈɜːld!" for the first.
        assert_eq!(
            phonemes("Hello, world! Why?"),
            vec!["həlˈoʊ, wˈɜːld!", "wˈaɪ?"]
        );
        // A clause that says nothing takes its mark with it.
        assert_eq!(phonemes("Hello ???, world"), vec!["həlˈoʊ, wˈɜːld"]);
    }

    #[test]
    fn normalizing_removes_non_finite_samples_and_scales_to_the_target_peak() {
        let mut samples = vec![0.1, -0.2, f32::NAN, f32::INFINITY, 0.05];
        normalize(&mut samples);
        assert_eq!(samples[2], 0.0);
        assert_eq!(samples[3], 0.0);
        assert!((samples[1] + TARGET_PEAK).abs() < 1e-6);
        assert!((samples[0] - TARGET_PEAK / 2.0).abs() < 1e-6);
    }

    #[test]
    fn near_silence_is_not_amplified() {
        let mut samples = vec![1e-4, -2e-4];
        normalize(&mut samples);
        assert_eq!(samples, vec![1e-4, -2e-4]);
    }
}
