//! Greedy decoding of one 30 s window, without timestamps.
//!
//! The prompt is `<|startoftranscript|> <|notimestamps|>`: English-only
//! models take no language or task token. Each step feeds the newest token
//! (earlier ones are cached by the decoder), takes the most likely token
//! among those allowed, and stops at
//! `<|endoftext|>`. What is allowed follows the reference decoder: the
//! model's suppress list (non-speech symbols), every special and timestamp
//! token, and at the first step a bare space or an immediate end.
//!
//! Alongside the tokens it reports what the caller needs to reject
//! hallucinations: the probability of "no speech" at the start position
//! and the average log-probability of the tokens chosen.

use candle_core::{IndexOp, Tensor};

use super::decoder::TextDecoder;
use super::vocab::SpecialTokens;

/// Most text tokens decoded from one window: half the decoder's context, as
/// the reference decoder does; 30 s of speech needs far fewer.
pub(crate) const MAX_TOKENS: usize = 224;

/// What may not be decoded, as a mask over the vocabulary.
#[derive(Debug, Clone)]
pub(crate) struct Suppression {
    always: Vec<bool>,
    at_start: Vec<bool>,
}

impl Suppression {
    /// `always`: ids never decoded (besides every special token after
    /// `eot`); `at_start`: ids not allowed as the first token.
    pub(crate) fn new(
        vocab_size: usize,
        specials: SpecialTokens,
        always: &[u32],
        at_start: &[u32],
    ) -> Self {
        let mut mask = vec![false; vocab_size];
        for (id, slot) in mask.iter_mut().enumerate() {
            *slot = id > specials.eot as usize;
        }
        for &id in always {
            if let Some(slot) = mask.get_mut(id as usize) {
                *slot = true;
            }
        }
        let mut start = mask.clone();
        for &id in at_start {
            if let Some(slot) = start.get_mut(id as usize) {
                *slot = true;
            }
        }
        Self {
            always: mask,
            at_start: start,
        }
    }
}

/// The outcome of decoding one window.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Decoded {
    /// Text tokens, without the prompt or `eot`.
    pub tokens: Vec<u32>,
    /// Probability of `<|nocaptions|>` at the start-of-transcript position.
    pub no_speech_prob: f32,
    /// Mean log-probability of the chosen tokens, `eot` included.
    pub avg_logprob: f32,
    /// A repetition loop was detected and cut.
    pub looped: bool,
}

/// Decodes `features` (the encoder's output for one window).
pub(crate) fn greedy(
    decoder: &TextDecoder,
    features: &Tensor,
    specials: SpecialTokens,
    suppression: &Suppression,
) -> candle_core::Result<Decoded> {
    let prompt = [specials.sot, specials.no_timestamps];
    let mut tokens = prompt.to_vec();
    let mut sum_logprob = 0f32;
    let mut no_speech_prob = 0f32;
    let mut looped = false;
    // Never past the decoder's positions, whatever the model's size.
    let max_tokens = MAX_TOKENS.min(decoder.max_positions().saturating_sub(prompt.len()));
    let embeddings = decoder.embeddings();
    let mut state = decoder.start(features)?;
    for step in 0..max_tokens {
        let fresh = &tokens[state.position()..];
        let hidden = decoder.step(&mut state, fresh)?;
        if step == 0 {
            let at_sot = logits_at(embeddings, &hidden, 0)?;
            no_speech_prob = softmax_at(&at_sot, specials.no_speech as usize);
        }
        let logits = logits_at(embeddings, &hidden, hidden.dim(1)? - 1)?;
        let mask = if step == 0 {
            &suppression.at_start
        } else {
            &suppression.always
        };
        let Some((next, logprob)) = pick(&logits, mask) else {
            break;
        };
        sum_logprob += logprob;
        if next == specials.eot {
            break;
        }
        tokens.push(next);
        if let Some(keep) = repetition_cut(&tokens[prompt.len()..]) {
            tokens.truncate(prompt.len() + keep);
            looped = true;
            break;
        }
    }
    let text = tokens.split_off(prompt.len());
    let avg_logprob = sum_logprob / (text.len() + 1) as f32;
    Ok(Decoded {
        tokens: text,
        no_speech_prob,
        avg_logprob,
        looped,
    })
}

/// The logits at one position of the decoder's output `(1, positions, width)`.
///
/// The output projection is the token embedding matrix (tied weights). It is
/// applied as `embeddings · h` rather than candle's `h · embeddingsᵀ`: the
/// transposed form multiplies through a strided view of the whole
/// 51864 × 384 matrix at every step, several times slower on the CPU.
fn logits_at(
    embeddings: &Tensor,
    hidden: &Tensor,
    position: usize,
) -> candle_core::Result<Vec<f32>> {
    let h = hidden.i((0, position))?.unsqueeze(1)?;
    embeddings.matmul(&h)?.flatten_all()?.to_vec1()
}

/// The most likely allowed token and its log-probability among the allowed
/// ones; `None` if nothing is allowed or every logit is NaN.
fn pick(logits: &[f32], suppressed: &[bool]) -> Option<(u32, f32)> {
    let allowed = || {
        logits
            .iter()
            .enumerate()
            .filter(|&(id, l)| !suppressed.get(id).copied().unwrap_or(true) && !l.is_nan())
    };
    let (best, &best_logit) = allowed().max_by(|a, b| a.1.total_cmp(b.1))?;
    if best_logit == f32::NEG_INFINITY {
        return None;
    }
    let sum: f32 = allowed().map(|(_, &l)| (l - best_logit).exp()).sum();
    Some((best as u32, -sum.ln()))
}

/// `softmax(logits)[index]`, computed stably; 0 for an index out of range.
fn softmax_at(logits: &[f32], index: usize) -> f32 {
    let Some(&target) = logits.get(index) else {
        return 0.0;
    };
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum: f32 = logits.iter().map(|&l| (l - max).exp()).sum();
    let p = (target - max).exp() / sum;
    if p.is_finite() {
        p
    } else {
        0.0
    }
}

/// Greedy decoding can fall into a loop ("the the the ...", or a phrase
/// over and over). If the tokens end with a block of `k` tokens repeated
/// enough times (12 tokens' worth, and at least 3 times), returns how many
/// tokens to keep: everything up to and including the first repetition.
fn repetition_cut(tokens: &[u32]) -> Option<usize> {
    const MAX_PERIOD: usize = 16;
    const MIN_SPAN: usize = 12;
    for period in 1..=MAX_PERIOD.min(tokens.len()) {
        let repeats = MIN_SPAN.div_ceil(period).max(3);
        let span = period * repeats;
        if span > tokens.len() {
            continue;
        }
        let tail = &tokens[tokens.len() - span..];
        let block = &tail[..period];
        if tail.chunks(period).all(|chunk| chunk == block) {
            return Some(tokens.len() - span + period);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn specials() -> SpecialTokens {
        SpecialTokens {
            eot: 5,
            sot: 6,
            no_timestamps: 8,
            no_speech: 7,
        }
    }

    #[test]
    fn suppression_covers_specials_and_the_start_list() {
        let s = Suppression::new(10, specials(), &[1], &[2, 5]);
        assert_eq!(
            s.always,
            [false, true, false, false, false, false, true, true, true, true]
        );
        assert!(s.at_start[2] && s.at_start[5] && s.at_start[1]);
        assert!(!s.at_start[0] && !s.at_start[3]);
        // Ids beyond the vocabulary are ignored, not a panic.
        let _ = Suppression::new(3, specials(), &[99], &[100]);
    }

    #[test]
    fn pick_takes_the_best_allowed_token_with_its_log_probability() {
        let logits = [0.0, 5.0, 1.0, f32::NAN];
        let (id, lp) = pick(&logits, &[false, true, false, false]).unwrap();
        assert_eq!(id, 2);
        let expected = 1.0 - (1f32.exp() + 1.0).ln();
        assert!((lp - expected).abs() < 1e-6);
        assert_eq!(pick(&logits, &[true; 4]), None);
        assert_eq!(pick(&[f32::NAN], &[false]), None);
        assert_eq!(pick(&[f32::NEG_INFINITY], &[false]), None);
        // A mask shorter than the logits suppresses the rest.
        assert_eq!(pick(&logits, &[false]).map(|p| p.0), Some(0));
    }

    #[test]
    fn softmax_at_is_a_probability() {
        let p = softmax_at(&[0.0, 0.0, 1000.0], 0);
        assert!(p.abs() < 1e-6);
        assert!((softmax_at(&[1.0, 1.0], 1) - 0.5).abs() < 1e-6);
        assert_eq!(softmax_at(&[1.0], 3), 0.0);
        assert_eq!(softmax_at(&[f32::NAN, 1.0], 1), 0.0);
    }

    #[test]
    fn loops_are_cut_to_their_first_occurrence() {
        // One token twelve times: keep one.
        let mut t = vec![1, 2];
        t.extend([9; 12]);
        assert_eq!(repetition_cut(&t), Some(3));
        assert_eq!(repetition_cut(&t[..13]), None);
        // A four-token phrase three times: keep the first.
        let phrase = [10, 11, 12, 13];
        let mut t = vec![1];
        for _ in 0..3 {
            t.extend(phrase);
        }
        assert_eq!(repetition_cut(&t), Some(5));
        // Natural repetition ("no, no") is left alone.
        assert_eq!(repetition_cut(&[1, 2, 1, 2, 3]), None);
        assert_eq!(repetition_cut(&[]), None);
    }
}
