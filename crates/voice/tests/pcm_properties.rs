//! Property tests of the PCM16 framing every voice socket reads: whatever
//! bytes arrive, in whatever chunks, decoding never panics, yields samples
//! in [-1, 1], and does not depend on where the frames were cut.

use colloquy_voice::pcm::{decode_pcm16, encode_pcm16, Pcm16Decoder};
use proptest::prelude::*;

proptest! {
    #[test]
    fn chunking_never_changes_the_decoded_samples(
        bytes in prop::collection::vec(any::<u8>(), 0..2048),
        cuts in prop::collection::vec(0usize..2048, 0..16),
    ) {
        let whole = Pcm16Decoder::default().push(&bytes);
        prop_assert_eq!(whole.len(), bytes.len() / 2);
        let mut cuts: Vec<usize> = cuts.into_iter().map(|cut| cut.min(bytes.len())).collect();
        cuts.sort_unstable();
        let mut decoder = Pcm16Decoder::default();
        let mut pieces = Vec::new();
        let mut start = 0;
        for cut in cuts.into_iter().chain([bytes.len()]) {
            pieces.extend(decoder.push(&bytes[start..cut]));
            start = cut;
        }
        prop_assert_eq!(pieces, whole.clone());
        prop_assert!(whole.iter().all(|s| (-1.0..=1.0).contains(s)));
    }

    #[test]
    fn a_whole_buffer_decodes_only_when_it_holds_whole_samples(
        bytes in prop::collection::vec(any::<u8>(), 0..512),
    ) {
        match decode_pcm16(&bytes) {
            Ok(samples) => prop_assert_eq!(samples.len() * 2, bytes.len()),
            Err(_) => prop_assert!(bytes.len() % 2 == 1),
        }
    }

    #[test]
    fn encoding_clamps_anything_including_nan(samples in prop::collection::vec(any::<f32>(), 0..256)) {
        let bytes = encode_pcm16(&samples);
        prop_assert_eq!(bytes.len(), samples.len() * 2);
        let decoded = decode_pcm16(&bytes).unwrap();
        prop_assert!(decoded.iter().all(|s| s.is_finite() && (-1.0..=1.0).contains(s)));
    }
}
