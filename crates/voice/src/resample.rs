//! Sample-rate conversion with rubato's FFT resampler (fixed ratios only:
//! 16 kHz microphone audio, 22.05 kHz Piper output, 24 kHz playback).
//!
//! [`resample`] converts a whole buffer (one synthesized clause);
//! [`StreamResampler`] converts a live stream chunk by chunk, keeping the
//! filter state between chunks so there are no clicks at chunk edges.

use audioadapter_buffers::direct::InterleavedSlice;
use rubato::{Fft, FixedSync, Resampler};

use crate::VoiceError;

/// Frames per resampler call for streams: 20 ms at 48 kHz, small enough to
/// keep latency low, large enough to keep the FFT cheap.
const STREAM_CHUNK: usize = 960;

fn construction_error(from: u32, to: u32, err: impl std::fmt::Display) -> VoiceError {
    VoiceError::InvalidAudio(format!("cannot resample {from} Hz to {to} Hz: {err}"))
}

fn check_rates(from: u32, to: u32) -> Result<(), VoiceError> {
    // 8 kHz to 192 kHz covers every real capture device; anything else is a
    // client bug, and a huge ratio would allocate huge FFTs.
    for rate in [from, to] {
        if !(8_000..=192_000).contains(&rate) {
            return Err(VoiceError::InvalidAudio(format!(
                "sample rate {rate} Hz is outside 8000..=192000"
            )));
        }
    }
    Ok(())
}

/// Converts a whole mono buffer from `from` Hz to `to` Hz.
pub fn resample(samples: &[f32], from: u32, to: u32) -> Result<Vec<f32>, VoiceError> {
    check_rates(from, to)?;
    if from == to || samples.is_empty() {
        return Ok(samples.to_vec());
    }
    let mut resampler = Fft::<f32>::new(from as usize, to as usize, 1024, 1, FixedSync::Input)
        .map_err(|err| construction_error(from, to, err))?;
    let needed = resampler.process_all_needed_output_len(samples.len());
    let mut output = vec![0.0f32; needed];
    let input = InterleavedSlice::new(samples, 1, samples.len())
        .map_err(|err| construction_error(from, to, err))?;
    let mut output_adapter = InterleavedSlice::new_mut(&mut output, 1, needed)
        .map_err(|err| construction_error(from, to, err))?;
    let (_, produced) = resampler
        .process_all_into_buffer(&input, &mut output_adapter, samples.len(), None)
        .map_err(|err| construction_error(from, to, err))?;
    output.truncate(produced);
    Ok(output)
}

/// A live mono stream converted chunk by chunk; `from == to` passes through.
pub struct StreamResampler {
    from: u32,
    to: u32,
    inner: Option<Fft<f32>>,
    pending: Vec<f32>,
    /// Output frames still to drop: the resampler's start-up delay, so the
    /// stream stays aligned with its source.
    delay_left: usize,
    scratch: Vec<f32>,
}

impl std::fmt::Debug for StreamResampler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamResampler")
            .field("from", &self.from)
            .field("to", &self.to)
            .field("pending", &self.pending.len())
            .finish()
    }
}

impl StreamResampler {
    /// A stream from `from` Hz to `to` Hz.
    pub fn new(from: u32, to: u32) -> Result<Self, VoiceError> {
        check_rates(from, to)?;
        let inner = if from == to {
            None
        } else {
            Some(
                Fft::<f32>::new(
                    from as usize,
                    to as usize,
                    STREAM_CHUNK,
                    1,
                    FixedSync::Input,
                )
                .map_err(|err| construction_error(from, to, err))?,
            )
        };
        let delay_left = inner.as_ref().map_or(0, |r| r.output_delay());
        let scratch = vec![0.0; inner.as_ref().map_or(0, |r| r.output_frames_max())];
        Ok(Self {
            from,
            to,
            inner,
            pending: Vec::new(),
            delay_left,
            scratch,
        })
    }

    /// The input rate.
    pub fn input_rate(&self) -> u32 {
        self.from
    }

    /// Feeds `input` and returns whatever output is ready; the rest waits
    /// for the next call (at most one chunk, ~20 ms).
    pub fn push(&mut self, input: &[f32]) -> Result<Vec<f32>, VoiceError> {
        let Some(resampler) = self.inner.as_mut() else {
            return Ok(input.to_vec());
        };
        self.pending.extend_from_slice(input);
        let mut out = Vec::new();
        let mut offset = 0;
        loop {
            let needed = resampler.input_frames_next();
            if self.pending.len() - offset < needed {
                break;
            }
            let chunk = &self.pending[offset..offset + needed];
            let input = InterleavedSlice::new(chunk, 1, needed)
                .map_err(|err| construction_error(self.from, self.to, err))?;
            let capacity = self.scratch.len();
            let mut output = InterleavedSlice::new_mut(&mut self.scratch, 1, capacity)
                .map_err(|err| construction_error(self.from, self.to, err))?;
            let (read, written) = resampler
                .process_into_buffer(&input, &mut output, None)
                .map_err(|err| construction_error(self.from, self.to, err))?;
            offset += read;
            let skip = self.delay_left.min(written);
            self.delay_left -= skip;
            out.extend_from_slice(&self.scratch[skip..written]);
        }
        self.pending.drain(..offset);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sine(freq: f32, rate: u32, seconds: f32) -> Vec<f32> {
        let n = (rate as f32 * seconds) as usize;
        (0..n)
            .map(|i| (2.0 * std::f32::consts::PI * freq * i as f32 / rate as f32).sin() * 0.5)
            .collect()
    }

    /// Frequency estimate from zero crossings: enough to catch a wrong ratio.
    fn zero_crossing_hz(samples: &[f32], rate: u32) -> f32 {
        let crossings = samples
            .windows(2)
            .filter(|w| (w[0] < 0.0) != (w[1] < 0.0))
            .count();
        crossings as f32 / 2.0 / (samples.len() as f32 / rate as f32)
    }

    #[test]
    fn whole_buffer_keeps_pitch_and_length() {
        for (from, to) in [(22_050, 24_000), (16_000, 24_000), (48_000, 16_000)] {
            let input = sine(440.0, from, 1.0);
            let output = resample(&input, from, to).unwrap();
            let expected = to as usize;
            assert!(
                output.len().abs_diff(expected) <= expected / 100,
                "{from}->{to}: {} samples",
                output.len()
            );
            let hz = zero_crossing_hz(&output, to);
            assert!((hz - 440.0).abs() < 5.0, "{from}->{to}: {hz} Hz");
        }
    }

    #[test]
    fn stream_matches_rate_and_pitch_across_odd_chunks() {
        let input = sine(300.0, 48_000, 1.0);
        let mut stream = StreamResampler::new(48_000, 16_000).unwrap();
        let mut output = Vec::new();
        for chunk in input.chunks(777) {
            output.extend(stream.push(chunk).unwrap());
        }
        assert!(
            output.len() > 15_000 && output.len() <= 16_000,
            "{}",
            output.len()
        );
        let hz = zero_crossing_hz(&output[1000..], 16_000);
        assert!((hz - 300.0).abs() < 5.0, "{hz} Hz");
    }

    #[test]
    fn same_rate_passes_through_and_bad_rates_are_errors() {
        let mut stream = StreamResampler::new(16_000, 16_000).unwrap();
        assert_eq!(stream.push(&[0.1, 0.2]).unwrap(), vec![0.1, 0.2]);
        assert!(StreamResampler::new(0, 16_000).is_err());
        assert!(resample(&[0.0], 16_000, 1_000_000).is_err());
    }
}
