//! `search_conversations`: find what the user said or was told before, in
//! their own conversations only (the query is scoped to the caller).

use async_trait::async_trait;
use colloquy_ai::ToolDefinition;
use serde_json::{json, Value};

use crate::{
    store,
    tools::{Tool, ToolContext, ToolFailure},
};

/// Matches returned by default and at most.
const DEFAULT_MATCHES: u64 = 5;
const MAX_MATCHES: u64 = 20;
/// Characters of message text shown around a match.
const SNIPPET_CHARS: usize = 240;

pub struct SearchConversations;

#[async_trait]
impl Tool for SearchConversations {
    fn definition(&self) -> ToolDefinition {
        ToolDefinition {
            name: "search_conversations".into(),
            description: "Search the user's earlier conversations for messages containing \
                          every word of the query (in any order, case-insensitive); \
                          best matches first."
                .into(),
            parameters: json!({
                "type": "object",
                "properties": {
                    "query": { "type": "string", "minLength": 1, "maxLength": 200 },
                    "limit": { "type": "integer", "minimum": 1, "maximum": MAX_MATCHES },
                },
                "required": ["query"],
                "additionalProperties": false,
            }),
        }
    }

    async fn call(&self, context: &ToolContext, arguments: Value) -> Result<Value, ToolFailure> {
        let query = arguments["query"].as_str().unwrap_or_default().trim();
        if query.is_empty() {
            return Err(ToolFailure::new("invalid_arguments", "The query is empty."));
        }
        let limit = arguments["limit"]
            .as_u64()
            .unwrap_or(DEFAULT_MATCHES)
            .min(MAX_MATCHES) as u32;
        let found = store::search_messages(&context.db, context.user_id, query, limit)
            .await
            .map_err(ToolFailure::storage)?;
        let matches: Vec<Value> = found
            .iter()
            .map(|found| {
                json!({
                    "conversation_id": found.conversation_id,
                    "conversation_title": found.conversation_title,
                    "sender": found.sender,
                    "snippet": snippet(&found.content, query),
                    "created_at": found.created_at,
                })
            })
            .collect();
        Ok(json!({ "query": query, "matches": matches }))
    }
}

/// About [`SNIPPET_CHARS`] characters of `text` around the first match of
/// `query`, or of one of its words (ASCII case-insensitively).
fn snippet(text: &str, query: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    if chars.len() <= SNIPPET_CHARS {
        return text.to_owned();
    }
    let lower: Vec<char> = chars.iter().map(char::to_ascii_lowercase).collect();
    let position = |needle: &str| {
        let needle: Vec<char> = needle.chars().map(|c| c.to_ascii_lowercase()).collect();
        lower
            .windows(needle.len().max(1))
            .position(|window| window == needle.as_slice())
    };
    // The whole query where it appears as typed, else its first word found.
    let found = position(query)
        .or_else(|| query.split_whitespace().find_map(position))
        .unwrap_or(0);
    let start = found.saturating_sub(SNIPPET_CHARS / 3);
    let end = (start + SNIPPET_CHARS).min(chars.len());
    let mut snippet: String = chars[start..end].iter().collect();
    if start > 0 {
        snippet.insert(0, '…');
    }
    if end < chars.len() {
        snippet.push('…');
    }
    snippet
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_message_is_cut_around_the_match() {
        let text = format!("{} the Secret word {}", "a".repeat(500), "b".repeat(500));
        let cut = snippet(&text, "secret");
        assert!(cut.contains("Secret"));
        assert!(cut.starts_with('…') && cut.ends_with('…'));
        assert!(cut.chars().count() <= SNIPPET_CHARS + 2);
        assert_eq!(snippet("short", "x"), "short");
        let words = snippet(&text, "word secret");
        assert!(words.contains("Secret word"), "{words}");
    }
}
