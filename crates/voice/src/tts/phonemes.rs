//! A Piper voice's `.onnx.json` config, and phoneme strings to model ids.
//!
//! Piper feeds the model one id per phoneme (a Unicode code point of espeak's
//! IPA), framed by BOS `^` and EOS `$`, with the pad `_` after BOS and after
//! every phoneme; the voice learned exactly that layout, so we reproduce it.

use std::collections::HashMap;

use serde::Deserialize;

/// The settings of one voice that synthesis needs.
#[derive(Debug, Clone)]
pub(crate) struct VoiceConfig {
    /// Sample rate of the model's output.
    pub sample_rate: u32,
    /// The espeak-ng voice the model was trained with (e.g. `en-us`).
    pub espeak_voice: String,
    /// `[noise_scale, length_scale, noise_w]`, the model's `scales` input.
    pub scales: [f32; 3],
    /// Phoneme to id mapping.
    pub ids: PhonemeIds,
}

/// The parts of the `.onnx.json` file we read; others are ignored.
#[derive(Deserialize)]
struct RawConfig {
    audio: RawAudio,
    #[serde(default)]
    espeak: Option<RawEspeak>,
    #[serde(default)]
    inference: Option<RawInference>,
    #[serde(default)]
    phoneme_type: Option<String>,
    phoneme_id_map: HashMap<String, Vec<i64>>,
}

#[derive(Deserialize)]
struct RawAudio {
    sample_rate: u32,
}

#[derive(Deserialize)]
struct RawEspeak {
    voice: String,
}

/// Piper's defaults apply to any value the file leaves out.
#[derive(Deserialize)]
struct RawInference {
    #[serde(default = "default_noise_scale")]
    noise_scale: f32,
    #[serde(default = "default_length_scale")]
    length_scale: f32,
    #[serde(default = "default_noise_w")]
    noise_w: f32,
}

fn default_noise_scale() -> f32 {
    0.667
}
fn default_length_scale() -> f32 {
    1.0
}
fn default_noise_w() -> f32 {
    0.8
}

impl VoiceConfig {
    /// Parses and checks a voice config; the error says what is wrong.
    pub(crate) fn parse(json: &str) -> Result<Self, String> {
        let raw: RawConfig = serde_json::from_str(json).map_err(|e| e.to_string())?;
        if let Some(kind) = raw.phoneme_type.as_deref() {
            if kind != "espeak" {
                return Err(format!(
                    "phoneme_type {kind:?} is not supported (only \"espeak\")"
                ));
            }
        }
        let sample_rate = raw.audio.sample_rate;
        if !(8_000..=192_000).contains(&sample_rate) {
            return Err(format!("audio.sample_rate {sample_rate} is out of range"));
        }
        let inference = raw.inference.unwrap_or(RawInference {
            noise_scale: default_noise_scale(),
            length_scale: default_length_scale(),
            noise_w: default_noise_w(),
        });
        let scales = [
            inference.noise_scale,
            inference.length_scale,
            inference.noise_w,
        ];
        if scales.iter().any(|s| !s.is_finite() || *s < 0.0) || inference.length_scale == 0.0 {
            return Err(format!("inference scales {scales:?} are not usable"));
        }
        Ok(Self {
            sample_rate,
            espeak_voice: raw.espeak.map_or_else(|| "en-us".to_owned(), |e| e.voice),
            scales,
            ids: PhonemeIds::new(raw.phoneme_id_map)?,
        })
    }
}

/// Maps phonemes to the ids a voice was trained with.
#[derive(Debug, Clone)]
pub(crate) struct PhonemeIds {
    map: HashMap<char, Vec<i64>>,
    bos: Vec<i64>,
    eos: Vec<i64>,
    pad: Vec<i64>,
}

/// A phoneme string as model input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Encoded {
    /// The ids, framed and padded.
    pub ids: Vec<i64>,
    /// How many phonemes had an id (0 means there is nothing to say).
    pub phonemes: usize,
    /// How many symbols had no id and were left out.
    pub skipped: usize,
}

impl PhonemeIds {
    /// Builds the mapping from the config's `phoneme_id_map`, which must have
    /// the BOS `^`, EOS `$` and pad `_` symbols.
    pub(crate) fn new(raw: HashMap<String, Vec<i64>>) -> Result<Self, String> {
        let mut map = HashMap::with_capacity(raw.len());
        for (symbol, ids) in raw {
            let mut chars = symbol.chars();
            match (chars.next(), chars.next()) {
                (Some(c), None) if !ids.is_empty() => {
                    map.insert(c, ids);
                }
                // Piper looks phonemes up one code point at a time, so a
                // longer key could never match; ignore it as Piper does.
                _ => tracing::debug!(symbol, "ignoring a phoneme_id_map entry Piper cannot use"),
            }
        }
        let special = |c: char| {
            map.get(&c)
                .cloned()
                .ok_or_else(|| format!("phoneme_id_map has no {c:?} symbol"))
        };
        Ok(Self {
            bos: special('^')?,
            eos: special('$')?,
            pad: special('_')?,
            map,
        })
    }

    /// Encodes an IPA string: `^ _ p1 _ p2 _ ... pn _ $`. Symbols without an
    /// id are skipped (and counted) rather than failing the sentence.
    pub(crate) fn encode(&self, phonemes: &str) -> Encoded {
        let mut ids = Vec::with_capacity(2 * phonemes.len() + 4);
        ids.extend(&self.bos);
        ids.extend(&self.pad);
        let (mut known, mut skipped) = (0, 0);
        for c in phonemes.chars() {
            match self.map.get(&c) {
                Some(phoneme) => {
                    ids.extend(phoneme);
                    ids.extend(&self.pad);
                    known += 1;
                }
                None => skipped += 1,
            }
        }
        ids.extend(&self.eos);
        Encoded {
            ids,
            phonemes: known,
            skipped,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: &str = r#"{
        "audio": {"sample_rate": 22050, "quality": "medium"},
        "espeak": {"voice": "en-us"},
        "inference": {"noise_scale": 0.5, "length_scale": 1.1, "noise_w": 0.7},
        "phoneme_type": "espeak",
        "phoneme_id_map": {"_": [0], "^": [1], "$": [2], " ": [3], "a": [14], "b": [15], "ə": [59], "ab": [99]},
        "num_speakers": 1
    }"#;

    fn ids() -> PhonemeIds {
        VoiceConfig::parse(CONFIG).unwrap().ids
    }

    #[test]
    fn the_config_gives_rate_voice_and_scales_in_model_order() {
        let config = VoiceConfig::parse(CONFIG).unwrap();
        assert_eq!(config.sample_rate, 22_050);
        assert_eq!(config.espeak_voice, "en-us");
        assert_eq!(config.scales, [0.5, 1.1, 0.7]);
    }

    #[test]
    fn phonemes_are_framed_by_bos_and_eos_with_pad_interleaved() {
        let encoded = ids().encode("ab ə");
        assert_eq!(encoded.ids, vec![1, 0, 14, 0, 15, 0, 3, 0, 59, 0, 2]);
        assert_eq!((encoded.phonemes, encoded.skipped), (4, 0));
    }

    #[test]
    fn ids_match_pipers_reference_implementation() {
        // The en_US-joe-medium ids of these symbols, and the ids piper-tts
        // 1.8 feeds that voice for "Hello, world!".
        let map = [
            ("_", 0),
            ("^", 1),
            ("$", 2),
            (" ", 3),
            ("!", 4),
            (",", 8),
            ("d", 17),
            ("h", 20),
            ("l", 24),
            ("o", 27),
            ("w", 35),
            ("ə", 59),
            ("ɜ", 62),
            ("ʊ", 100),
            ("ˈ", 120),
            ("ː", 122),
        ];
        let ids = PhonemeIds::new(
            map.iter()
                .map(|&(s, id)| (s.to_owned(), vec![id]))
                .collect(),
        )
        .unwrap();
        assert_eq!(
            ids.encode("həlˈoʊ, wˈɜːld!").ids,
            vec![
                1, 0, 20, 0, 59, 0, 24, 0, 120, 0, 27, 0, 100, 0, 8, 0, 3, 0, 35, 0, 120, 0, 62, 0,
                122, 0, 24, 0, 17, 0, 4, 0, 2
            ]
        );
    }

    #[test]
    fn unknown_symbols_are_skipped_and_counted() {
        let encoded = ids().encode("a☃bʘ");
        assert_eq!(encoded.ids, vec![1, 0, 14, 0, 15, 0, 2]);
        assert_eq!((encoded.phonemes, encoded.skipped), (2, 2));
    }

    #[test]
    fn an_empty_string_is_only_the_frame() {
        let encoded = ids().encode("");
        assert_eq!(encoded.ids, vec![1, 0, 2]);
        assert_eq!(encoded.phonemes, 0);
    }

    #[test]
    fn missing_inference_settings_take_pipers_defaults() {
        let config = VoiceConfig::parse(
            r#"{"audio": {"sample_rate": 16000}, "phoneme_id_map": {"_": [0], "^": [1], "$": [2]}}"#,
        )
        .unwrap();
        assert_eq!(config.scales, [0.667, 1.0, 0.8]);
        assert_eq!(config.espeak_voice, "en-us");
    }

    #[test]
    fn a_config_without_the_special_symbols_or_with_text_phonemes_is_refused() {
        let no_pad = r#"{"audio": {"sample_rate": 16000}, "phoneme_id_map": {"^": [1], "$": [2]}}"#;
        assert!(VoiceConfig::parse(no_pad).unwrap_err().contains("'_'"));
        let text = CONFIG.replace(r#""phoneme_type": "espeak""#, r#""phoneme_type": "text""#);
        assert!(VoiceConfig::parse(&text)
            .unwrap_err()
            .contains("not supported"));
        assert!(VoiceConfig::parse("not json").is_err());
    }
}
