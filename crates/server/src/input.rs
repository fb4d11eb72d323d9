//! Client input parsed into types that can only hold valid values
//! ("parse, don't validate"): once a handler has a [`UserText`], it is
//! non-empty, bounded and free of control characters other than line breaks
//! and tabs.

use std::fmt;

/// Why input was refused; the text is safe to send back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidInput {
    pub code: &'static str,
    pub message: String,
}

impl fmt::Display for InvalidInput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

fn invalid(code: &'static str, message: impl Into<String>) -> InvalidInput {
    InvalidInput {
        code,
        message: message.into(),
    }
}

fn has_forbidden_control(text: &str) -> bool {
    text.chars()
        .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
}

/// The text of a user message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserText(String);

impl UserText {
    /// Accept `text` if it has visible content, at most `max_chars`
    /// characters and no control characters besides line breaks and tabs.
    /// Surrounding whitespace is kept: it can matter (code, poems).
    pub fn parse(text: String, max_chars: usize) -> Result<Self, InvalidInput> {
        if text.trim().is_empty() {
            return Err(invalid("empty_message", "message content is empty"));
        }
        let length = text.chars().count();
        if length > max_chars {
            return Err(invalid(
                "message_too_long",
                format!("message is {length} characters; the limit is {max_chars}"),
            ));
        }
        if has_forbidden_control(&text) {
            return Err(invalid(
                "invalid_characters",
                "message contains control characters",
            ));
        }
        Ok(Self(text))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A client-chosen idempotency key for a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientId(String);

impl ClientId {
    /// Longest accepted client id, in characters.
    pub const MAX_CHARS: usize = 128;

    /// Accept 1 to [`Self::MAX_CHARS`] printable characters.
    pub fn parse(text: String) -> Result<Self, InvalidInput> {
        let length = text.chars().count();
        if length == 0 || length > Self::MAX_CHARS || text.chars().any(char::is_control) {
            return Err(invalid(
                "invalid_client_id",
                format!(
                    "client_id must be 1 to {} printable characters",
                    Self::MAX_CHARS
                ),
            ));
        }
        Ok(Self(text))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A conversation title: trimmed, one line, at most [`Title::MAX_CHARS`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Title(String);

impl Title {
    pub const MAX_CHARS: usize = 200;

    /// Accept a title; an empty one is allowed (the first message names the conversation).
    pub fn parse(text: &str) -> Result<Self, InvalidInput> {
        let trimmed = text.trim();
        if trimmed.chars().count() > Self::MAX_CHARS {
            return Err(invalid(
                "title_too_long",
                format!("title must be at most {} characters", Self::MAX_CHARS),
            ));
        }
        if trimmed.chars().any(char::is_control) {
            return Err(invalid(
                "invalid_characters",
                "title must be a single line of text",
            ));
        }
        Ok(Self(trimmed.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_text_rules() {
        assert!(UserText::parse("hi\nthere\t!".into(), 100).is_ok());
        assert_eq!(
            UserText::parse("   ".into(), 100).unwrap_err().code,
            "empty_message"
        );
        assert_eq!(
            UserText::parse("abcd".into(), 3).unwrap_err().code,
            "message_too_long"
        );
        assert_eq!(
            UserText::parse("a\u{0}b".into(), 100).unwrap_err().code,
            "invalid_characters"
        );
        // Length is counted in characters, not bytes.
        assert!(UserText::parse("ééé".into(), 3).is_ok());
    }

    #[test]
    fn client_id_rules() {
        assert!(ClientId::parse("c-1".into()).is_ok());
        assert!(ClientId::parse(String::new()).is_err());
        assert!(ClientId::parse("x".repeat(129)).is_err());
        assert!(ClientId::parse("a\nb".into()).is_err());
    }

    #[test]
    fn title_rules() {
        assert_eq!(Title::parse("  Trip plan ").unwrap().as_str(), "Trip plan");
        assert!(Title::parse("").is_ok());
        assert!(Title::parse(&"t".repeat(201)).is_err());
        assert!(Title::parse("two\nlines").is_err());
    }

    proptest::proptest! {
        #[test]
        fn any_message_text_is_accepted_only_when_valid(text in "(?s).{0,64}", max in 1usize..80) {
            match UserText::parse(text.clone(), max) {
                Ok(parsed) => {
                    proptest::prop_assert_eq!(parsed.as_str(), text.as_str());
                    proptest::prop_assert!(!text.trim().is_empty());
                    proptest::prop_assert!(text.chars().count() <= max);
                    proptest::prop_assert!(!has_forbidden_control(&text));
                }
                Err(error) => proptest::prop_assert!(!error.message.is_empty()),
            }
        }

        #[test]
        fn any_client_id_or_title_is_bounded_when_accepted(text in "(?s).{0,300}") {
            if let Ok(id) = ClientId::parse(text.clone()) {
                proptest::prop_assert!((1..=ClientId::MAX_CHARS).contains(&id.as_str().chars().count()));
            }
            if let Ok(title) = Title::parse(&text) {
                proptest::prop_assert!(title.as_str().chars().count() <= Title::MAX_CHARS);
                proptest::prop_assert!(!title.as_str().chars().any(char::is_control));
            }
        }
    }
}
