//! Splits text into sentences, and sentences into clauses, before phonemization.
//!
//! Piper voices were trained on phonemes that keep the clause punctuation
//! (`həlˈoʊ, wˈɜːld!`), which is what gives them their pauses and question
//! intonation. The espeak-ng 1.51 shipped by Debian drops that punctuation, so
//! we find the boundaries here, phonemize clause by clause, and put the mark
//! back. Each sentence then becomes one model run, which also bounds the input
//! length for very long text.

/// Longest clause, in characters, handed to espeak-ng and the model as one
/// piece; longer runs without punctuation are cut at a space.
const MAX_CLAUSE_CHARS: usize = 250;
/// Longest sentence, in characters, synthesized in one model run; longer
/// sentences are closed early at a clause boundary. Bounds memory and latency.
const MAX_SENTENCE_CHARS: usize = 400;

/// Words that end with a period without ending the sentence ("Dr. Smith").
const ABBREVIATIONS: &[&str] = &[
    "mr", "mrs", "ms", "dr", "prof", "sr", "jr", "st", "mt", "vs", "e.g", "i.e", "approx", "fig",
];

/// A piece of a sentence and the punctuation mark that ended it, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Clause {
    /// The words, trimmed; never empty.
    pub text: String,
    /// `,` `;` `:` inside a sentence, `.` `?` `!` at its end.
    pub end: Option<char>,
}

/// One sentence: the unit of one model run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Sentence {
    /// Its clauses, in order; never empty.
    pub clauses: Vec<Clause>,
}

/// Splits `text` into sentences of clauses. Whitespace-only text and text
/// with nothing but punctuation give no sentences.
pub(crate) fn sentences(text: &str) -> Vec<Sentence> {
    let mut splitter = Splitter::default();
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next_is_break = |j: usize| chars.get(j).is_none_or(|n| n.is_whitespace());
        match c {
            '\n' | '\r' => splitter.end_sentence(None),
            '.' | '!' | '?' | '…' => {
                // Take the whole run ("?!", "...") and any closing quote or bracket.
                let mut j = i;
                while j < chars.len() && matches!(chars[j], '.' | '!' | '?' | '…') {
                    j += 1;
                }
                let marks = &chars[i..j];
                while j < chars.len() && matches!(chars[j], '"' | '\'' | '”' | '’' | ')' | ']')
                {
                    j += 1;
                }
                let is_abbreviation = marks == ['.'] && splitter.ends_with_abbreviation();
                if next_is_break(j) && !is_abbreviation {
                    let mark = if marks.contains(&'?') {
                        '?'
                    } else if marks.contains(&'!') {
                        '!'
                    } else {
                        '.'
                    };
                    splitter.end_sentence(Some(mark));
                } else {
                    // "3.14", "e.g.", "Dr. Who": espeak-ng reads these itself.
                    splitter.current.extend(&chars[i..j]);
                }
                i = j;
                continue;
            }
            ',' | ';' | ':' if next_is_break(i + 1) => splitter.end_clause(Some(c)),
            '—' => splitter.end_clause(Some(',')),
            '–' if next_is_break(i + 1) => splitter.end_clause(Some(',')),
            _ => splitter.current.push(c),
        }
        i += 1;
    }
    splitter.end_sentence(None);
    splitter.sentences
}

/// The state of one pass over the text.
#[derive(Default)]
struct Splitter {
    current: String,
    clauses: Vec<Clause>,
    sentences: Vec<Sentence>,
}

impl Splitter {
    /// Whether the word just before a period is an abbreviation or an initial.
    fn ends_with_abbreviation(&self) -> bool {
        let word = self
            .current
            .rsplit(|c: char| c.is_whitespace() || c == '(' || c == '"')
            .next()
            .unwrap_or("")
            .to_lowercase();
        let is_initial = word.chars().count() == 1 && word.chars().all(char::is_alphabetic);
        is_initial || ABBREVIATIONS.contains(&word.as_str())
    }

    /// Closes the clause being read; a clause with no words is dropped with
    /// its mark (a lone "..." or ", ," says nothing).
    fn end_clause(&mut self, end: Option<char>) {
        let text = std::mem::take(&mut self.current);
        let chunks = split_long(text.trim(), MAX_CLAUSE_CHARS);
        let last = chunks.len().saturating_sub(1);
        for (index, chunk) in chunks.into_iter().enumerate() {
            let end = if index == last { end } else { Some(',') };
            let clause_chars = chunk.chars().count();
            if self.sentence_chars() + clause_chars > MAX_SENTENCE_CHARS && !self.clauses.is_empty()
            {
                self.push_sentence();
            }
            self.clauses.push(Clause { text: chunk, end });
        }
    }

    fn end_sentence(&mut self, end: Option<char>) {
        self.end_clause(end);
        self.push_sentence();
    }

    fn push_sentence(&mut self) {
        if !self.clauses.is_empty() {
            let clauses = std::mem::take(&mut self.clauses);
            self.sentences.push(Sentence { clauses });
        }
    }

    fn sentence_chars(&self) -> usize {
        self.clauses.iter().map(|c| c.text.chars().count()).sum()
    }
}

/// Cuts `text` into pieces of at most `max` characters, at spaces where it
/// can and mid-word where a single word is longer than `max`. Pieces that
/// hold only punctuation or symbols are kept: espeak-ng decides what they say.
fn split_long(text: &str, max: usize) -> Vec<String> {
    let mut pieces = Vec::new();
    let mut piece = String::new();
    let mut piece_chars = 0;
    for word in text.split_whitespace() {
        let word_chars: Vec<char> = word.chars().collect();
        for part in word_chars.chunks(max) {
            let needs_space = piece_chars > 0;
            if piece_chars + usize::from(needs_space) + part.len() > max {
                pieces.push(std::mem::take(&mut piece));
                piece_chars = 0;
            }
            if piece_chars > 0 {
                piece.push(' ');
                piece_chars += 1;
            }
            piece.extend(part);
            piece_chars += part.len();
        }
    }
    if piece_chars > 0 {
        pieces.push(piece);
    }
    pieces
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clause(text: &str, end: Option<char>) -> Clause {
        Clause {
            text: text.to_owned(),
            end,
        }
    }

    fn texts(input: &str) -> Vec<Vec<(String, Option<char>)>> {
        sentences(input)
            .into_iter()
            .map(|s| s.clauses.into_iter().map(|c| (c.text, c.end)).collect())
            .collect()
    }

    #[test]
    fn sentences_split_at_terminal_punctuation_and_keep_the_mark() {
        let got = sentences("Hello world. How are you? Great!");
        assert_eq!(
            got,
            vec![
                Sentence {
                    clauses: vec![clause("Hello world", Some('.'))]
                },
                Sentence {
                    clauses: vec![clause("How are you", Some('?'))]
                },
                Sentence {
                    clauses: vec![clause("Great", Some('!'))]
                },
            ]
        );
    }

    #[test]
    fn commas_semicolons_and_colons_end_clauses_within_a_sentence() {
        assert_eq!(
            texts("Well, yes; and then: no"),
            vec![vec![
                ("Well".into(), Some(',')),
                ("yes".into(), Some(';')),
                ("and then".into(), Some(':')),
                ("no".into(), None),
            ]]
        );
    }

    #[test]
    fn numbers_abbreviations_and_initials_do_not_end_a_sentence() {
        assert_eq!(
            texts("Dr. Smith paid 1,000.50 dollars to J. Doe, e.g. today."),
            vec![vec![
                (
                    "Dr. Smith paid 1,000.50 dollars to J. Doe".into(),
                    Some(',')
                ),
                ("e.g. today".into(), Some('.')),
            ]]
        );
    }

    #[test]
    fn runs_of_marks_and_closing_quotes_end_one_sentence() {
        assert_eq!(
            texts("Really?! \"Yes...\" she said"),
            vec![
                vec![("Really".into(), Some('?'))],
                vec![("\"Yes".into(), Some('.'))],
                vec![("she said".into(), None)],
            ]
        );
    }

    #[test]
    fn newlines_end_sentences() {
        assert_eq!(
            texts("- first item\n- second item"),
            vec![
                vec![("- first item".into(), None)],
                vec![("- second item".into(), None)]
            ]
        );
    }

    #[test]
    fn empty_whitespace_and_punctuation_only_text_gives_no_sentences() {
        assert!(sentences("").is_empty());
        assert!(sentences(" \n\t ").is_empty());
        assert!(sentences("??? ... , ;").is_empty());
    }

    #[test]
    fn long_text_without_punctuation_is_cut_into_bounded_pieces() {
        let text = "word ".repeat(1000);
        let got = sentences(&text);
        assert!(got.len() > 1);
        for sentence in &got {
            let chars: usize = sentence
                .clauses
                .iter()
                .map(|c| c.text.chars().count())
                .sum();
            assert!(chars <= MAX_SENTENCE_CHARS, "sentence of {chars} chars");
            for clause in &sentence.clauses {
                assert!(clause.text.chars().count() <= MAX_CLAUSE_CHARS);
                assert!(!clause.text.is_empty());
            }
        }
        let words: usize = got
            .iter()
            .flat_map(|s| &s.clauses)
            .map(|c| c.text.split(' ').count())
            .sum();
        assert_eq!(words, 1000, "no word is lost");
    }

    #[test]
    fn a_single_huge_word_is_cut_mid_word() {
        let word = "é".repeat(MAX_CLAUSE_CHARS * 2 + 7);
        let pieces = split_long(&word, MAX_CLAUSE_CHARS);
        assert_eq!(pieces.len(), 3);
        assert_eq!(pieces.concat(), word);
    }
}
