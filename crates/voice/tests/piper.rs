//! The Piper voice end to end: real model, real ONNX Runtime, real espeak-ng.
//!
//! Needs the files of `scripts/setup-models.sh piper onnxruntime` under
//! `$COLLOQUY_MODELS_DIR` (default: `data/models` at the workspace root) and
//! Debian's `espeak-ng` and `libespeak-ng-dev`. A missing file fails the
//! tests with the command that fetches it; nothing is skipped.
#![cfg(feature = "piper")]

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use colloquy_voice::tts::{PiperPaths, PiperTts};
use colloquy_voice::TextToSpeech;

fn models_dir() -> PathBuf {
    match std::env::var_os("COLLOQUY_MODELS_DIR") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../data/models"),
    }
}

/// Loads a voice, failing with the setup command when files are missing.
fn load_voice() -> (PiperTts, Duration) {
    let dir = models_dir();
    let started = Instant::now();
    match PiperTts::load(&PiperPaths::in_dir(&dir)) {
        Ok(voice) => (voice, started.elapsed()),
        Err(e) => panic!(
            "could not load the Piper voice from {}: {e}\n\
             run `scripts/setup-models.sh piper onnxruntime` (or point COLLOQUY_MODELS_DIR at a models directory)",
            dir.display()
        ),
    }
}

/// One voice shared by the tests: loading takes about a second.
fn voice() -> &'static PiperTts {
    static VOICE: OnceLock<PiperTts> = OnceLock::new();
    VOICE.get_or_init(|| {
        let (voice, took) = load_voice();
        eprintln!("piper: voice loaded in {} ms", took.as_millis());
        voice
    })
}

fn seconds(voice: &PiperTts, samples: &[f32]) -> f64 {
    samples.len() as f64 / f64::from(voice.sample_rate())
}

fn rms(samples: &[f32]) -> f64 {
    let sum: f64 = samples.iter().map(|&s| f64::from(s) * f64::from(s)).sum();
    (sum / samples.len().max(1) as f64).sqrt()
}

/// Every sample is a number in [-1, 1].
fn assert_playable(samples: &[f32]) {
    for (i, &s) in samples.iter().enumerate() {
        assert!(s.is_finite(), "sample {i} is {s}");
        assert!(
            (-1.0..=1.0).contains(&s),
            "sample {i} is {s}, outside [-1, 1]"
        );
    }
}

#[test]
fn known_sentences_become_audible_speech_of_plausible_length() {
    let voice = voice();
    for text in [
        "Hello, world. How are you today?",
        "The quick brown fox jumps over the lazy dog.",
        "Is it going to rain tomorrow, or will the sun come out?",
    ] {
        let started = Instant::now();
        let audio = voice.synthesize(text).unwrap();
        let took = started.elapsed().as_secs_f64();
        let duration = seconds(voice, &audio);
        let words = text.split_whitespace().count() as f64;
        eprintln!(
            "piper: {text:?}: {duration:.2} s of audio in {:.0} ms (real-time factor {:.3}), rms {:.3}",
            took * 1000.0,
            took / duration.max(1e-9),
            rms(&audio)
        );
        assert_playable(&audio);
        assert!(
            rms(&audio) > 0.03,
            "{text:?} is nearly silent (rms {})",
            rms(&audio)
        );
        let per_word = duration / words;
        assert!(
            (0.15..=1.0).contains(&per_word),
            "{text:?}: {per_word:.2} s per word ({duration:.2} s)"
        );
    }
}

#[test]
fn latency_and_real_time_factor_are_reported() {
    let voice = voice();
    let started = Instant::now();
    let first = voice.synthesize("Sure, I can help with that.").unwrap();
    let latency = started.elapsed();
    let started = Instant::now();
    voice.synthesize("Sure, I can help with that.").unwrap();
    let again = started.elapsed();
    let paragraph = "Colloquy streams the reply sentence by sentence. \
        Each sentence is turned into speech as soon as it is complete, \
        so the listener hears the start of the answer while the rest is still being written. \
        That keeps the pause after a question short.";
    let started = Instant::now();
    let audio = voice.synthesize(paragraph).unwrap();
    let took = started.elapsed().as_secs_f64();
    let duration = seconds(voice, &audio);
    eprintln!(
        "piper: first short sentence ({:.2} s of audio) after {} ms ({} ms the next time); \
         paragraph of {duration:.2} s in {took:.2} s: real-time factor {:.3}",
        seconds(voice, &first),
        latency.as_millis(),
        again.as_millis(),
        took / duration.max(1e-9)
    );
    assert_playable(&audio);
    assert!(!first.is_empty());
}

#[test]
fn several_sentences_are_joined_with_a_pause() {
    let voice = voice();
    let one = voice.synthesize("I agree.").unwrap();
    let two = voice.synthesize("I agree. I agree.").unwrap();
    // Two sentences plus the pause between them: longer than twice one.
    assert!(
        two.len() > 2 * one.len(),
        "{} vs 2 x {}",
        two.len(),
        one.len()
    );
    assert_playable(&two);
}

#[test]
fn empty_and_whitespace_text_gives_no_audio() {
    let voice = voice();
    for text in ["", " ", "\n\t  \n"] {
        assert!(voice.synthesize(text).unwrap().is_empty(), "{text:?}");
    }
}

#[test]
fn odd_input_never_panics_and_stays_playable() {
    let voice = voice();
    // Long enough to span many sentences and clauses; kept small because
    // synthesizing it in a debug build is the slowest part of the suite.
    let long = "This sentence is repeated to make a very long text, and it goes on. ".repeat(15);
    let long: String = long.chars().take(1000).collect();
    let unbroken = "supercalifragilistic".repeat(60);
    for text in [
        "???",
        "...",
        "😀🎉👍",
        "I ❤️ Rust 🦀!",
        "Call 555-0123 at 10:30 on 2024-03-05; it costs $1,234.56 (or 99%).",
        "3.14159 2.71828 1e10 -7 0x1F",
        "naïve café, Straße, 東京, Москва, مرحبا",
        "a\0b",
        "<b>bold</b> & *stars* [link](x) `code` #tag @user",
        "—,;:!?…",
        &unbroken,
    ] {
        let audio = voice
            .synthesize(text)
            .unwrap_or_else(|e| panic!("{:?}: {e}", text.chars().take(40).collect::<String>()));
        assert_playable(&audio);
    }
    let audio = voice.synthesize(&long).unwrap();
    let duration = seconds(voice, &audio);
    let words = long.split_whitespace().count() as f64;
    eprintln!(
        "piper: {} chars of text gave {duration:.1} s of audio",
        long.chars().count()
    );
    assert!(
        (0.15..=1.0).contains(&(duration / words)),
        "{duration:.1} s for {words} words"
    );
}

#[test]
fn a_second_voice_in_the_same_process_loads_and_speaks() {
    let _first = voice();
    let (second, took) = load_voice();
    eprintln!("piper: second voice loaded in {} ms", took.as_millis());
    assert_eq!(second.sample_rate(), 22_050);
    let audio = second.synthesize("A second voice.").unwrap();
    assert!(rms(&audio) > 0.03);
    assert_playable(&audio);
}

#[test]
fn repeatable_synthesis_gives_the_same_samples_every_time() {
    let voice = voice();
    let text = "How often should I run next week?";
    let first = voice.synthesize_repeatable(text).unwrap();
    let second = voice.synthesize_repeatable(text).unwrap();
    assert!(!first.is_empty());
    assert_eq!(first, second);
    // The voice's own noise is what varies: ordinary synthesis differs.
    let ordinary: Vec<Vec<f32>> = (0..3).map(|_| voice.synthesize(text).unwrap()).collect();
    assert!(
        ordinary.iter().any(|audio| *audio != ordinary[0]),
        "ordinary synthesis repeated exactly three times"
    );
}
