//! Speech for the tests: sentences spoken by `espeak-ng` (Debian package
//! `espeak-ng`), as 16 kHz mono samples.
#![allow(dead_code)] // each test binary uses its own part

use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

pub const RATE: u32 = 16_000;

/// `text` spoken by espeak-ng, as mono 16 kHz samples.
pub fn speak(text: &str) -> Vec<f32> {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let path = std::env::temp_dir().join(format!(
        "colloquy-voice-test-{}-{}.wav",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let status = Command::new("espeak-ng")
        .arg("-w")
        .arg(&path)
        .arg(text)
        .status()
        .unwrap_or_else(|e| {
            panic!("cannot run espeak-ng ({e}); install it: apt-get install -y espeak-ng")
        });
    assert!(status.success(), "espeak-ng failed: {status}");
    let mut reader = hound::WavReader::open(&path).expect("espeak-ng wrote a wav file");
    let spec = reader.spec();
    assert_eq!(spec.sample_format, hound::SampleFormat::Int);
    assert_eq!(spec.bits_per_sample, 16);
    let channels = usize::from(spec.channels);
    let samples: Vec<f32> = reader
        .samples::<i16>()
        .map(|s| f32::from(s.expect("a valid sample")) / 32768.0)
        .collect::<Vec<_>>()
        .chunks(channels)
        .map(|frame| frame.iter().sum::<f32>() / channels as f32)
        .collect();
    let _ = std::fs::remove_file(&path);
    resample_linear(&samples, spec.sample_rate, RATE)
}

/// Linear-interpolation resampling: crude, but espeak's voice has little
/// energy above 8 kHz, so aliasing does not matter here.
pub fn resample_linear(input: &[f32], from: u32, to: u32) -> Vec<f32> {
    if input.is_empty() || from == to {
        return input.to_vec();
    }
    let ratio = f64::from(from) / f64::from(to);
    let len = (input.len() as f64 / ratio).floor() as usize;
    (0..len)
        .map(|i| {
            let pos = i as f64 * ratio;
            let j = pos.floor() as usize;
            let frac = (pos - j as f64) as f32;
            let a = input[j];
            let b = input.get(j + 1).copied().unwrap_or(a);
            a + (b - a) * frac
        })
        .collect()
}
