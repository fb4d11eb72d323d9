//! Whisper speech-to-text on real speech: sentences spoken by `espeak-ng`,
//! transcribed by the real model, scored by word error rate.
//!
//! Needs the model (`scripts/setup-models.sh whisper`, found in
//! `$COLLOQUY_MODELS_DIR` or `<workspace>/data/models`) and the `espeak-ng`
//! command; without either the tests fail and say how to get it. Timing is
//! printed (real-time factor), never asserted.
#![cfg(feature = "whisper")]

mod support;

use colloquy_voice::wer::{normalized_words, word_edits};
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Instant;

use colloquy_voice::stt::whisper::{EncoderWindow, MODEL_DIR_NAME};
use colloquy_voice::{SpeechToText, WhisperStt};
use support::{resample_linear, speak, RATE};

const SENTENCES: [&str; 4] = [
    "The quick brown fox jumps over the lazy dog.",
    "Please call Stella and ask her to bring these things with her from the store.",
    "I would like to book a table for dinner tonight.",
    "Open the window, it is getting warm in here.",
];

fn models_dir() -> PathBuf {
    std::env::var_os("COLLOQUY_MODELS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../data/models"))
}

/// The model, loaded once for every test of this binary.
fn stt() -> &'static WhisperStt {
    static STT: OnceLock<WhisperStt> = OnceLock::new();
    STT.get_or_init(|| load(EncoderWindow::default()))
}

fn load(window: EncoderWindow) -> WhisperStt {
    let dir = models_dir().join(MODEL_DIR_NAME);
    match WhisperStt::load(&dir) {
        Ok(stt) => stt.with_encoder_window(window),
        // The error names `scripts/setup-models.sh whisper`.
        Err(e) => panic!("{e} (or point COLLOQUY_MODELS_DIR at another models directory)"),
    }
}

/// Transcribes every sentence and returns the overall word error rate,
/// printing each transcript and the real-time factor.
fn word_error_rate(stt: &WhisperStt, label: &str) -> f64 {
    let (mut edits, mut total) = (0, 0);
    let (mut audio_secs, mut busy_secs) = (0.0, 0.0);
    for sentence in SENTENCES {
        let audio = speak(sentence);
        let started = Instant::now();
        let text = stt.transcribe(&audio).expect("transcription succeeds");
        busy_secs += started.elapsed().as_secs_f64();
        audio_secs += audio.len() as f64 / f64::from(RATE);
        let (e, words) = word_edits(sentence, &text);
        eprintln!("[{label}] {e} edits: {sentence:?} -> {text:?}");
        edits += e;
        total += words;
    }
    let wer = edits as f64 / total as f64;
    eprintln!(
        "[{label}] WER {:.1}% ({edits}/{total} words); {audio_secs:.1} s of audio in \
         {busy_secs:.2} s: real-time factor {:.3} (skewed by tests running alongside \
         unless --test-threads=1)",
        wer * 100.0,
        busy_secs / audio_secs
    );
    wer
}

/// Deterministic white noise (a linear congruential generator).
fn white_noise(samples: usize, amplitude: f32) -> Vec<f32> {
    let mut state = 0x2545_f491_u32;
    (0..samples)
        .map(|_| {
            state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (state >> 8) as f32 / (1u32 << 24) as f32 * 2.0 - 1.0
        })
        .map(|s| s * amplitude)
        .collect()
}

#[test]
fn word_error_rate_helpers_count_edits_over_normalised_words() {
    assert_eq!(word_edits("Hello, World! It's", "hello world it's"), (0, 3));
    assert_eq!(word_edits("a b c", "a x c"), (1, 3));
    assert_eq!(word_edits("a b c", "a c"), (1, 3));
    assert_eq!(word_edits("a b c", "a b c d"), (1, 3));
    assert_eq!(word_edits("a b", ""), (2, 2));
    assert_eq!(resample_linear(&[0.0, 1.0, 2.0, 3.0], 4, 2), [0.0, 2.0]);
}

#[test]
fn spoken_sentences_are_transcribed_with_at_most_ten_percent_word_errors() {
    let wer = word_error_rate(stt(), "trimmed window");
    assert!(
        wer <= 0.10,
        "word error rate {:.1}% is over 10%",
        wer * 100.0
    );
}

#[test]
fn the_full_30_s_window_is_as_accurate() {
    let wer = word_error_rate(&load(EncoderWindow::Full), "full window");
    assert!(
        wer <= 0.10,
        "word error rate {:.1}% is over 10%",
        wer * 100.0
    );
}

#[test]
fn empty_audio_gives_an_empty_transcript() {
    assert_eq!(stt().transcribe(&[]).unwrap(), "");
}

#[test]
fn silence_gives_an_empty_transcript() {
    let silence = vec![0.0; 3 * RATE as usize];
    assert_eq!(stt().transcribe(&silence).unwrap(), "");
    // Very quiet hiss (below -60 dBFS) too.
    assert_eq!(stt().transcribe(&white_noise(48_000, 5e-4)).unwrap(), "");
}

#[test]
fn white_noise_gives_an_empty_or_near_empty_transcript() {
    for amplitude in [0.02, 0.1, 0.5] {
        let text = stt()
            .transcribe(&white_noise(4 * RATE as usize, amplitude))
            .unwrap();
        eprintln!("white noise at {amplitude}: {text:?}");
        assert!(
            normalized_words(&text).len() <= 2,
            "noise at {amplitude} gave {text:?}"
        );
    }
}

#[test]
fn nan_and_out_of_range_samples_are_survived() {
    let mut audio = speak(SENTENCES[0]);
    for (i, s) in audio.iter_mut().enumerate().step_by(97) {
        *s = if i % 2 == 0 { f32::NAN } else { 7.0 };
    }
    let text = stt().transcribe(&audio).expect("no error on bad samples");
    eprintln!("with NaN and clipped samples: {text:?}");
    assert!(stt().transcribe(&[f32::NAN; 16_000]).unwrap().is_empty());
    assert!(stt().transcribe(&[f32::INFINITY]).unwrap().is_empty());
}

#[test]
fn audio_longer_than_30_s_is_transcribed_window_by_window() {
    // The sentences with 12 s of silence between them: about 45 s, so at
    // least two windows.
    let mut audio = Vec::new();
    for sentence in &SENTENCES[..3] {
        audio.extend(speak(sentence));
        audio.extend(std::iter::repeat_n(0.0, 12 * RATE as usize));
    }
    audio.extend(speak(SENTENCES[3]));
    assert!(audio.len() > 30 * RATE as usize);
    let started = Instant::now();
    let text = stt().transcribe(&audio).expect("long audio is transcribed");
    eprintln!(
        "{:.1} s of audio in {:.2} s: {text:?}",
        audio.len() as f64 / f64::from(RATE),
        started.elapsed().as_secs_f64()
    );
    let wer = colloquy_voice::wer::word_error_rate(&SENTENCES.join(" "), &text);
    assert!(
        wer <= 0.15,
        "word error rate {:.1}% on long audio",
        wer * 100.0
    );
}
