//! PCM16 little-endian framing: the wire format of every voice socket.
//!
//! Clients send raw bytes whose frame boundaries need not fall on a sample
//! (a binary frame of odd length is legal on the wire), so [`Pcm16Decoder`]
//! carries a dangling byte over to the next frame instead of dropping it.

/// Decodes a stream of PCM16 LE byte chunks into f32 samples in [-1, 1].
#[derive(Debug, Default)]
pub struct Pcm16Decoder {
    carry: Option<u8>,
}

impl Pcm16Decoder {
    /// Decodes `bytes`, keeping an odd trailing byte for the next call.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<f32> {
        let mut out = Vec::with_capacity(bytes.len() / 2 + 1);
        let mut rest = bytes;
        if let Some(low) = self.carry.take() {
            match rest.split_first() {
                Some((&high, tail)) => {
                    out.push(sample_to_f32(i16::from_le_bytes([low, high])));
                    rest = tail;
                }
                None => {
                    self.carry = Some(low);
                    return out;
                }
            }
        }
        let mut pairs = rest.chunks_exact(2);
        out.extend(
            pairs
                .by_ref()
                .map(|pair| sample_to_f32(i16::from_le_bytes([pair[0], pair[1]]))),
        );
        self.carry = pairs.remainder().first().copied();
        out
    }

    /// Forgets a dangling byte (after a barge-in or a new utterance).
    pub fn reset(&mut self) {
        self.carry = None;
    }
}

/// Decodes a complete PCM16 LE buffer; an odd byte count is an error because
/// a whole buffer (a JSON `audio` event) must hold whole samples.
pub fn decode_pcm16(bytes: &[u8]) -> Result<Vec<f32>, crate::VoiceError> {
    if !bytes.len().is_multiple_of(2) {
        return Err(crate::VoiceError::InvalidAudio(format!(
            "PCM16 audio must have an even number of bytes, got {}",
            bytes.len()
        )));
    }
    Ok(Pcm16Decoder::default().push(bytes))
}

/// Encodes f32 samples as PCM16 LE, clamping to the representable range
/// (synthesis can overshoot slightly) and mapping NaN to silence.
pub fn encode_pcm16(samples: &[f32]) -> Vec<u8> {
    let mut out = Vec::with_capacity(samples.len() * 2);
    for &sample in samples {
        out.extend_from_slice(&sample_to_i16(sample).to_le_bytes());
    }
    out
}

/// One i16 sample as f32 in [-1, 1).
pub fn sample_to_f32(sample: i16) -> f32 {
    f32::from(sample) / 32768.0
}

/// One f32 sample as i16, clamped; NaN becomes 0.
pub fn sample_to_i16(sample: f32) -> i16 {
    if sample.is_nan() {
        return 0;
    }
    (sample.clamp(-1.0, 1.0) * 32767.0).round() as i16
}

/// Root-mean-square level of `samples` (0 for an empty slice).
pub fn rms(samples: &[f32]) -> f32 {
    if samples.is_empty() {
        return 0.0;
    }
    let sum: f64 = samples.iter().map(|&s| f64::from(s) * f64::from(s)).sum();
    (sum / samples.len() as f64).sqrt() as f32
}

/// Milliseconds of audio that `samples` samples last at `sample_rate`.
pub fn duration_ms(samples: usize, sample_rate: u32) -> u64 {
    if sample_rate == 0 {
        return 0;
    }
    samples as u64 * 1000 / u64::from(sample_rate)
}

/// Number of samples in `ms` milliseconds at `sample_rate`.
pub fn samples_for_ms(ms: u64, sample_rate: u32) -> usize {
    (ms * u64::from(sample_rate) / 1000) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_pcm16() {
        let samples = [0.0, 0.5, -0.5, 0.999, -1.0];
        let decoded = decode_pcm16(&encode_pcm16(&samples)).unwrap();
        for (a, b) in samples.iter().zip(&decoded) {
            assert!((a - b).abs() < 1e-3, "{a} vs {b}");
        }
    }

    #[test]
    fn carries_an_odd_byte_across_chunks() {
        let bytes = encode_pcm16(&[0.25, -0.25, 0.75]);
        let mut decoder = Pcm16Decoder::default();
        let mut out = decoder.push(&bytes[..3]);
        assert_eq!(out.len(), 1);
        out.extend(decoder.push(&bytes[3..4]));
        out.extend(decoder.push(&bytes[4..]));
        assert_eq!(out, decode_pcm16(&bytes).unwrap());
    }

    #[test]
    fn rejects_an_odd_whole_buffer() {
        assert!(decode_pcm16(&[1, 2, 3]).is_err());
    }

    #[test]
    fn clamps_and_silences_nan() {
        assert_eq!(sample_to_i16(2.0), 32767);
        assert_eq!(sample_to_i16(-2.0), -32767);
        assert_eq!(sample_to_i16(f32::NAN), 0);
    }

    #[test]
    fn measures_level_and_duration() {
        assert_eq!(rms(&[]), 0.0);
        assert!((rms(&[0.5, -0.5]) - 0.5).abs() < 1e-6);
        assert_eq!(duration_ms(16_000, 16_000), 1000);
        assert_eq!(samples_for_ms(20, 24_000), 480);
    }
}
