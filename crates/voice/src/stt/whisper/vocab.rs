//! Whisper's vocabulary: token ids back to text.
//!
//! `vocabulary.txt` holds one token per line, the line number being the id.
//! Tokens are GPT-2 byte-level BPE: every byte is written as one printable
//! character (space is `Ġ`, newline `Ċ`, ...), so decoding maps each
//! character back to its byte and the concatenated bytes are UTF-8 text. A
//! character can be half of a multi-byte letter, so bytes are joined before
//! they are turned into a string.

use std::collections::HashMap;

/// Token ids with a role in decoding, looked up by name in the vocabulary
/// rather than hard-coded, so a vocabulary that numbers them differently is
/// still decoded right.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SpecialTokens {
    /// `<|endoftext|>`: the end of a transcript; every id from here on is special.
    pub eot: u32,
    /// `<|startoftranscript|>`.
    pub sot: u32,
    /// `<|notimestamps|>`.
    pub no_timestamps: u32,
    /// `<|nocaptions|>` (called `<|nospeech|>` in later vocabularies): its
    /// probability at the start position is Whisper's "no speech" signal.
    pub no_speech: u32,
}

/// The token table, each token as the bytes it stands for.
#[derive(Debug)]
pub(crate) struct Vocabulary {
    tokens: Vec<Vec<u8>>,
    specials: SpecialTokens,
}

impl Vocabulary {
    /// Parses `vocabulary.txt`.
    pub(crate) fn parse(text: &str) -> Result<Self, String> {
        let byte_of = byte_decoder();
        let mut ids = HashMap::new();
        let mut tokens = Vec::new();
        for (id, line) in text.lines().enumerate() {
            if line.starts_with("<|") && line.ends_with("|>") {
                ids.insert(line, id as u32);
            }
            let bytes = line
                .chars()
                .flat_map(|c| match byte_of.get(&c) {
                    Some(b) => vec![*b],
                    // Not a byte-level character: keep it as written.
                    None => c.to_string().into_bytes(),
                })
                .collect();
            tokens.push(bytes);
        }
        let id = |name: &str| {
            ids.get(name)
                .copied()
                .ok_or_else(|| format!("the vocabulary has no {name} token"))
        };
        let specials = SpecialTokens {
            eot: id("<|endoftext|>")?,
            sot: id("<|startoftranscript|>")?,
            no_timestamps: id("<|notimestamps|>")?,
            no_speech: id("<|nospeech|>").or_else(|_| id("<|nocaptions|>"))?,
        };
        Ok(Self { tokens, specials })
    }

    /// The special tokens.
    pub(crate) fn specials(&self) -> SpecialTokens {
        self.specials
    }

    /// Number of tokens.
    pub(crate) fn len(&self) -> usize {
        self.tokens.len()
    }

    /// The text of `ids`, leaving out special and unknown tokens.
    pub(crate) fn decode(&self, ids: &[u32]) -> String {
        let bytes: Vec<u8> = ids
            .iter()
            .filter(|&&id| id < self.specials.eot)
            .filter_map(|&id| self.tokens.get(id as usize))
            .flatten()
            .copied()
            .collect();
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

/// GPT-2's `bytes_to_unicode`, reversed: printable bytes stand for
/// themselves, the others were shifted to code points from 256 up, in order.
fn byte_decoder() -> HashMap<char, u8> {
    let printable =
        |b: u8| matches!(b, b'!'..=b'~') || matches!(b, 0xA1..=0xAC) || matches!(b, 0xAE..=0xFF);
    let mut shifted = 0u32;
    (0..=255u8)
        .map(|b| {
            let c = if printable(b) {
                char::from(b)
            } else {
                shifted += 1;
                char::from_u32(255 + shifted).unwrap_or(char::REPLACEMENT_CHARACTER)
            };
            (c, b)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vocabulary {
        let lines = [
            "Hello",         // 0
            "Ġworld",        // 1
            ".",             // 2
            "Ġcaf",          // 3
            "Ã",             // 4: first byte of "é" (0xC3)
            "©",             // 5: second byte (0xA9)
            "ĊĠ",            // 6: newline and space
            "<|endoftext|>", // 7
            "<|startoftranscript|>",
            "<|nocaptions|>",
            "<|notimestamps|>",
        ];
        Vocabulary::parse(&lines.join("\n")).unwrap()
    }

    #[test]
    fn finds_the_special_tokens_by_name() {
        let v = sample();
        assert_eq!(v.len(), 11);
        assert_eq!(
            v.specials(),
            SpecialTokens {
                eot: 7,
                sot: 8,
                no_timestamps: 10,
                no_speech: 9
            }
        );
    }

    #[test]
    fn decodes_byte_level_tokens_and_joins_split_characters() {
        let v = sample();
        assert_eq!(v.decode(&[0, 1, 2]), "Hello world.");
        assert_eq!(v.decode(&[3, 4, 5]), " café");
        assert_eq!(v.decode(&[6]), "\n ");
    }

    #[test]
    fn leaves_out_special_and_unknown_ids() {
        let v = sample();
        assert_eq!(v.decode(&[8, 10, 0, 7, 9, 12_345]), "Hello");
        // Half a character decodes to the replacement character, no panic.
        assert_eq!(v.decode(&[4]), "\u{fffd}");
    }

    #[test]
    fn byte_decoder_covers_every_byte_once() {
        let table = byte_decoder();
        assert_eq!(table.len(), 256);
        assert_eq!(table[&'Ġ'], b' ');
        assert_eq!(table[&'Ċ'], b'\n');
        assert_eq!(table[&'!'], b'!');
    }

    #[test]
    fn a_vocabulary_without_the_special_tokens_is_rejected() {
        let err = Vocabulary::parse("a\nb\n").unwrap_err();
        assert!(err.contains("<|endoftext|>"), "{err}");
    }
}
