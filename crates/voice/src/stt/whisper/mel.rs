//! Whisper's input features: an 80-bin log-mel spectrogram of 16 kHz audio.
//!
//! This follows the reference implementation rather than whisper.cpp's
//! variant, because that is what the model was trained on: a periodic Hann
//! window of 400 samples, hop 160, frames centred on `t * 160` (the signal is
//! reflect-padded by 200 samples at the start), power spectrum, a Slaney-style
//! mel filterbank (librosa's default: `htk = false`, `norm = "slaney"`),
//! `log10` clamped at 1e-10, then the dynamic range limited to 8 (i.e. 80 dB)
//! below the maximum and scaled with `(x + 4) / 4`. Audio beyond the input is
//! zeros, as Whisper pads every input with 30 s of silence.

use std::sync::Arc;

use realfft::num_complex::Complex;
use realfft::{RealFftPlanner, RealToComplex};

/// Sample rate the model expects.
pub(crate) const SAMPLE_RATE: usize = 16_000;
/// FFT size (25 ms).
pub(crate) const N_FFT: usize = 400;
/// Hop between frames (10 ms): 100 frames per second.
pub(crate) const HOP: usize = 160;
/// Number of frequency bins of one real FFT.
const N_BINS: usize = N_FFT / 2 + 1;

/// Computes log-mel spectrograms; built once per model, shared by every call.
pub(crate) struct LogMel {
    n_mels: usize,
    /// `n_mels` rows of `N_BINS` weights.
    filters: Vec<f32>,
    window: Vec<f32>,
    fft: Arc<dyn RealToComplex<f32>>,
}

impl LogMel {
    /// A spectrogram with `n_mels` mel bins (80 for every Whisper but large-v3).
    pub(crate) fn new(n_mels: usize) -> Self {
        let window = (0..N_FFT)
            .map(|i| {
                let phase = 2.0 * std::f64::consts::PI * i as f64 / N_FFT as f64;
                (0.5 - 0.5 * phase.cos()) as f32
            })
            .collect();
        Self {
            n_mels,
            filters: mel_filters(SAMPLE_RATE as f64, N_FFT, n_mels),
            window,
            fft: RealFftPlanner::<f32>::new().plan_fft_forward(N_FFT),
        }
    }

    /// The first `n_frames` frames of the spectrogram of `samples` (followed
    /// by silence), as `n_mels` rows of `n_frames` values.
    pub(crate) fn compute(&self, samples: &[f32], n_frames: usize) -> Vec<f32> {
        // The signal, centred frames: index -200 is sample 200 (reflection);
        // anything past the end is Whisper's zero padding.
        let at = |i: isize| -> f32 {
            let i = i.unsigned_abs();
            samples.get(i).copied().unwrap_or(0.0)
        };
        let mut input = self.fft.make_input_vec();
        let mut spectrum = self.fft.make_output_vec();
        let mut scratch = self.fft.make_scratch_vec();
        let mut power = [0f32; N_BINS];
        let mut mel = vec![0f32; self.n_mels * n_frames];
        for frame in 0..n_frames {
            let start = (frame * HOP) as isize - (N_FFT / 2) as isize;
            for (k, slot) in input.iter_mut().enumerate() {
                *slot = self.window[k] * at(start + k as isize);
            }
            if self
                .fft
                .process_with_scratch(&mut input, &mut spectrum, &mut scratch)
                .is_err()
            {
                // Only possible with buffers of the wrong length, which the
                // plan made itself; leave this frame silent rather than fail.
                continue;
            }
            for (p, c) in power.iter_mut().zip(&spectrum) {
                *p = Complex::norm_sqr(c);
            }
            for m in 0..self.n_mels {
                let row = &self.filters[m * N_BINS..(m + 1) * N_BINS];
                let energy: f32 = row.iter().zip(&power).map(|(w, p)| w * p).sum();
                mel[m * n_frames + frame] = energy.max(1e-10).log10();
            }
        }
        let max = mel.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        for v in &mut mel {
            *v = (v.max(max - 8.0) + 4.0) / 4.0;
        }
        mel
    }
}

/// Slaney's mel scale (librosa `htk = false`): linear below 1 kHz, log above.
fn hz_to_mel(hz: f64) -> f64 {
    const F_SP: f64 = 200.0 / 3.0;
    const MIN_LOG_HZ: f64 = 1000.0;
    let min_log_mel = MIN_LOG_HZ / F_SP;
    let log_step = 6.4f64.ln() / 27.0;
    if hz >= MIN_LOG_HZ {
        min_log_mel + (hz / MIN_LOG_HZ).ln() / log_step
    } else {
        hz / F_SP
    }
}

/// Inverse of [`hz_to_mel`].
fn mel_to_hz(mel: f64) -> f64 {
    const F_SP: f64 = 200.0 / 3.0;
    const MIN_LOG_HZ: f64 = 1000.0;
    let min_log_mel = MIN_LOG_HZ / F_SP;
    let log_step = 6.4f64.ln() / 27.0;
    if mel >= min_log_mel {
        MIN_LOG_HZ * (log_step * (mel - min_log_mel)).exp()
    } else {
        F_SP * mel
    }
}

/// Triangular filters between 0 Hz and Nyquist with area normalisation, as
/// `librosa.filters.mel(sr, n_fft, n_mels)`: `n_mels` rows of `n_fft/2 + 1`.
fn mel_filters(sample_rate: f64, n_fft: usize, n_mels: usize) -> Vec<f32> {
    let n_bins = n_fft / 2 + 1;
    let bin_hz = |k: usize| k as f64 * sample_rate / n_fft as f64;
    let (low, high) = (hz_to_mel(0.0), hz_to_mel(sample_rate / 2.0));
    let edges: Vec<f64> = (0..n_mels + 2)
        .map(|i| mel_to_hz(low + (high - low) * i as f64 / (n_mels + 1) as f64))
        .collect();
    let mut filters = vec![0f32; n_mels * n_bins];
    for m in 0..n_mels {
        let (left, centre, right) = (edges[m], edges[m + 1], edges[m + 2]);
        let norm = 2.0 / (right - left);
        for k in 0..n_bins {
            let f = bin_hz(k);
            let rising = (f - left) / (centre - left);
            let falling = (right - f) / (right - centre);
            filters[m * n_bins + k] = (rising.min(falling).max(0.0) * norm) as f32;
        }
    }
    filters
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f32, b: f32) -> bool {
        (a - b).abs() < 1e-6
    }

    #[test]
    fn filterbank_matches_whisper_reference_values() {
        // Values from the `mel_80` filterbank the reference Whisper ships.
        let f = mel_filters(16_000.0, 400, 80);
        let at = |m: usize, k: usize| f[m * N_BINS + k];
        assert!(close(at(0, 0), 0.0));
        assert!(close(at(0, 1), 0.024_862_59));
        assert!(close(at(0, 2), 0.0));
        assert!(close(at(1, 1), 0.001_990_82));
        assert!(close(at(1, 2), 0.022_871_77));
        assert!(close(at(10, 10), 0.019_908_22));
        assert!(close(at(10, 11), 0.004_954_37));
        assert!(close(at(40, 42), 0.005_411_1));
        assert!(close(at(40, 43), 0.014_735_57));
        assert!(close(at(40, 44), 0.006_518_19));
        assert!(close(at(79, 186), 0.000_366_74));
        assert!(close(at(79, 191), 0.002_698_38));
        assert!(f.iter().all(|w| *w >= 0.0));
    }

    #[test]
    fn mel_scale_round_trips() {
        for hz in [0.0, 440.0, 999.0, 1000.0, 4000.0, 8000.0] {
            assert!((mel_to_hz(hz_to_mel(hz)) - hz).abs() < 1e-6, "{hz}");
        }
    }

    #[test]
    fn silence_is_flat_and_a_tone_peaks_in_its_band() {
        let mel = LogMel::new(80);
        let silence = mel.compute(&[0.0; 1600], 30);
        assert_eq!(silence.len(), 80 * 30);
        assert!(silence.iter().all(|v| close(*v, silence[0])));

        // A 1 kHz tone: the strongest mel bin of a middle frame is the one
        // whose centre frequency is nearest 1 kHz.
        let tone: Vec<f32> = (0..16_000)
            .map(|i| (2.0 * std::f32::consts::PI * 1000.0 * i as f32 / 16_000.0).sin() * 0.5)
            .collect();
        let spec = mel.compute(&tone, 100);
        let frame = 50;
        let loudest = (0..80)
            .max_by(|&a, &b| spec[a * 100 + frame].total_cmp(&spec[b * 100 + frame]))
            .unwrap();
        let (low, high) = (hz_to_mel(0.0), hz_to_mel(8000.0));
        let centre = |m: usize| mel_to_hz(low + (high - low) * (m + 1) as f64 / 81.0);
        let nearest = (0..80)
            .min_by(|&a, &b| {
                (centre(a) - 1000.0)
                    .abs()
                    .total_cmp(&(centre(b) - 1000.0).abs())
            })
            .unwrap();
        assert!(loudest.abs_diff(nearest) <= 1, "{loudest} vs {nearest}");
        // Values are in Whisper's range: at most (max + 4) / 4 and 2 below it.
        let max = spec.iter().copied().fold(f32::MIN, f32::max);
        assert!(spec.iter().all(|v| *v >= max - 2.0 - 1e-6));
    }

    #[test]
    fn frames_past_the_audio_are_computed_from_silence() {
        let mel = LogMel::new(80);
        // One sample of audio, 10 frames asked: no panic, every value finite.
        let spec = mel.compute(&[0.5], 10);
        assert_eq!(spec.len(), 800);
        assert!(spec.iter().all(|v| v.is_finite()));
        assert!(mel.compute(&[], 0).is_empty());
    }
}
