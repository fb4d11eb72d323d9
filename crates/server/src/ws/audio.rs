//! Audio on the JSON chat socket: an `audio` event carries base64 PCM16
//! at any rate, and [`AudioDecoder`] turns it into the 16 kHz samples the
//! voice pipeline takes, keeping the resampler's state from one event to
//! the next. A large payload (a clip sent whole, not a live microphone
//! chunk) is decoded on a blocking thread, so that it does not hold up the
//! other sockets this runtime thread serves.

use base64::{engine::general_purpose::STANDARD as BASE64, Engine as _};
use colloquy_voice::{pcm::decode_pcm16, resample::StreamResampler, INPUT_SAMPLE_RATE};

/// Payloads of at least this many base64 characters (about half a second
/// of 16 kHz audio) are decoded off the runtime. The browser client sends
/// 100 ms chunks, well below it: for those a thread hop costs more than
/// the work.
const BLOCKING_THRESHOLD: usize = 16 * 1024;

/// Audio that cannot be decoded; the text is the `invalid_audio` message.
#[derive(Debug)]
pub(super) struct InvalidAudio(pub String);

/// Decodes one socket's audio events.
#[derive(Default)]
pub(super) struct AudioDecoder {
    /// Converts audio at other rates to 16 kHz; replaced when the rate changes.
    resampler: Option<StreamResampler>,
}

impl AudioDecoder {
    /// The samples of one `audio` event: base64 PCM16 at `sample_rate`
    /// (16 kHz by default), resampled to 16 kHz.
    pub(super) async fn decode(
        &mut self,
        data: String,
        sample_rate: Option<u32>,
    ) -> Result<Vec<f32>, InvalidAudio> {
        let rate = sample_rate.unwrap_or(INPUT_SAMPLE_RATE);
        if data.len() < BLOCKING_THRESHOLD {
            return decode(&data, rate, &mut self.resampler);
        }
        // The resampler goes to the thread and comes back with the result.
        let mut resampler = self.resampler.take();
        let task = tokio::task::spawn_blocking(move || {
            let decoded = decode(&data, rate, &mut resampler);
            (decoded, resampler)
        });
        match task.await {
            Ok((decoded, resampler)) => {
                self.resampler = resampler;
                decoded
            }
            Err(error) => {
                tracing::error!(%error, "audio decoding task failed");
                Err(InvalidAudio("the audio could not be decoded".into()))
            }
        }
    }
}

fn decode(
    data: &str,
    rate: u32,
    resampler: &mut Option<StreamResampler>,
) -> Result<Vec<f32>, InvalidAudio> {
    let bytes = BASE64
        .decode(data)
        .map_err(|_| InvalidAudio("audio data must be base64-encoded PCM16".into()))?;
    let samples = decode_pcm16(&bytes).map_err(|error| InvalidAudio(error.to_string()))?;
    if rate == INPUT_SAMPLE_RATE {
        return Ok(samples);
    }
    let resampler = match resampler {
        Some(resampler) if resampler.input_rate() == rate => resampler,
        slot => slot.insert(
            StreamResampler::new(rate, INPUT_SAMPLE_RATE)
                .map_err(|error| InvalidAudio(error.to_string()))?,
        ),
    };
    resampler
        .push(&samples)
        .map_err(|error| InvalidAudio(error.to_string()))
}

#[cfg(test)]
mod tests {
    use colloquy_voice::pcm::encode_pcm16;

    use super::*;

    fn base64_pcm(samples: usize) -> String {
        BASE64.encode(encode_pcm16(&vec![0.25; samples]))
    }

    #[tokio::test]
    async fn small_and_large_payloads_decode_alike() {
        let mut decoder = AudioDecoder::default();
        let small = decoder.decode(base64_pcm(1_600), None).await.unwrap();
        assert_eq!(small.len(), 1_600);
        let large = decoder.decode(base64_pcm(16_000), None).await.unwrap();
        assert_eq!(large.len(), 16_000);
        assert!(large.iter().all(|s| (s - 0.25).abs() < 1e-3));
    }

    #[tokio::test]
    async fn the_resampler_survives_a_trip_off_the_runtime() {
        // Large, small, large: the middle one is decoded on the runtime
        // between two decoded off it, all through one resampler.
        let sizes = [48_000, 4_800, 48_000];
        let mut reference = StreamResampler::new(48_000, INPUT_SAMPLE_RATE).unwrap();
        let mut decoder = AudioDecoder::default();
        for samples in sizes {
            let expected = reference.push(&vec![0.25; samples]).unwrap().len();
            let decoded = decoder
                .decode(base64_pcm(samples), Some(48_000))
                .await
                .unwrap();
            assert_eq!(decoded.len(), expected);
        }
    }

    #[tokio::test]
    async fn bad_audio_is_refused_with_a_reason() {
        let mut decoder = AudioDecoder::default();
        let InvalidAudio(message) = decoder
            .decode("not base64!".into(), None)
            .await
            .unwrap_err();
        assert!(message.contains("base64"), "{message}");
        let odd = BASE64.encode([0u8; 3]);
        let InvalidAudio(message) = decoder.decode(odd, None).await.unwrap_err();
        assert!(message.contains("even"), "{message}");
    }

    proptest::proptest! {
        #[test]
        fn any_audio_event_decodes_or_is_refused_without_panicking(
            data in "[A-Za-z0-9+/=]{0,400}|.{0,64}",
            rate in proptest::prop_oneof![
                proptest::prelude::Just(16_000u32),
                proptest::prelude::Just(48_000),
                0u32..400_000,
            ],
        ) {
            let mut resampler = None;
            if let Ok(samples) = decode(&data, rate, &mut resampler) {
                // At most 2x the input (8 kHz, the lowest accepted rate, to
                // 16 kHz) plus the resampler's held-back chunk.
                let input_samples = data.len() * 3 / 8 + 1;
                proptest::prop_assert!(samples.len() <= input_samples * 2 + 4096);
            }
        }
    }
}
