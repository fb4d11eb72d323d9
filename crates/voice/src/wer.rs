//! Word error rate, the measure of transcription quality used by the voice
//! tests and the benchmark.

/// Lower-cases `text`, turns punctuation into spaces (keeping apostrophes
/// inside words) and splits it into words.
pub fn normalized_words(text: &str) -> Vec<String> {
    text.to_lowercase()
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || c == '\'' {
                c
            } else {
                ' '
            }
        })
        .collect::<String>()
        .split_whitespace()
        .map(|word| word.trim_matches('\'').to_string())
        .filter(|word| !word.is_empty())
        .collect()
}

/// Word edits (substitutions + deletions + insertions) turning `reference`
/// into `hypothesis`, and the number of reference words, both after
/// [`normalized_words`]: the two sums behind a corpus-level error rate.
pub fn word_edits(reference: &str, hypothesis: &str) -> (usize, usize) {
    let reference = normalized_words(reference);
    let hypothesis = normalized_words(hypothesis);
    // Levenshtein distance over words, one row at a time.
    let mut previous: Vec<usize> = (0..=hypothesis.len()).collect();
    for (i, ref_word) in reference.iter().enumerate() {
        let mut current = vec![i + 1; hypothesis.len() + 1];
        for (j, hyp_word) in hypothesis.iter().enumerate() {
            let substitution = previous[j] + usize::from(ref_word != hyp_word);
            current[j + 1] = substitution.min(previous[j + 1] + 1).min(current[j] + 1);
        }
        previous = current;
    }
    (previous[hypothesis.len()], reference.len())
}

/// (substitutions + deletions + insertions) / reference words, after
/// [`normalized_words`]. An empty reference gives 0 for an empty hypothesis
/// and 1 otherwise.
pub fn word_error_rate(reference: &str, hypothesis: &str) -> f64 {
    match word_edits(reference, hypothesis) {
        (0, 0) => 0.0,
        (_, 0) => 1.0,
        (edits, words) => edits as f64 / words as f64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identical_text_scores_zero() {
        assert_eq!(word_error_rate("Hello, world!", "hello world"), 0.0);
    }

    #[test]
    fn counts_each_kind_of_error() {
        assert_eq!(word_error_rate("a b c d", "a x c d"), 0.25);
        assert_eq!(word_error_rate("a b c d", "a c d"), 0.25);
        assert_eq!(word_error_rate("a b c d", "a b c d e"), 0.25);
        assert_eq!(word_error_rate("a b", ""), 1.0);
        assert_eq!(word_error_rate("", "a"), 1.0);
    }

    #[test]
    fn keeps_contractions_whole() {
        assert_eq!(normalized_words("It's 'fine'."), vec!["it's", "fine"]);
    }
}
