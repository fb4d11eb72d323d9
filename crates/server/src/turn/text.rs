//! Reply text limits: a reply is clipped to `max_reply_chars`, and a large
//! provider chunk leaves as several bounded `delta` events.

/// Largest `delta` event content, in characters: a provider chunk larger
/// than this is sent as several deltas, keeping frames small.
pub(super) const MAX_DELTA_CHARS: usize = 2048;

/// `text` cut to at most `room` characters, and whether it was cut.
pub(super) fn clip_chars(text: String, room: usize) -> (String, bool) {
    match text.char_indices().nth(room) {
        Some((cut, _)) => (text[..cut].to_owned(), true),
        None => (text, false),
    }
}

/// `text` in pieces of at most `size` characters, never splitting a character.
pub(super) fn split_chars(text: &str, size: usize) -> impl Iterator<Item = &str> {
    let mut rest = text;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let cut = rest.char_indices().nth(size).map_or(rest.len(), |(i, _)| i);
        let (piece, tail) = rest.split_at(cut);
        rest = tail;
        Some(piece)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clip_keeps_whole_characters() {
        assert_eq!(clip_chars("héllo".into(), 2), ("hé".into(), true));
        assert_eq!(clip_chars("hé".into(), 2), ("hé".into(), false));
        assert_eq!(clip_chars("x".into(), 0), (String::new(), true));
    }

    #[test]
    fn split_makes_bounded_pieces_that_rejoin() {
        let text = "ab€cd€e";
        let pieces: Vec<&str> = split_chars(text, 3).collect();
        assert_eq!(pieces, ["ab€", "cd€", "e"]);
        assert_eq!(split_chars("", 3).count(), 0);
    }
}
