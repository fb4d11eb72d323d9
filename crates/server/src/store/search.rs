//! Searching a user's own messages (the `search_conversations` tool) with
//! each backend's full-text index, best matches first: SQLite's FTS5 table
//! `message_search` ranked by bm25, PostgreSQL's GIN index on
//! `to_tsvector('simple', content)` ranked by `ts_rank`. This is the one
//! place the two dialects differ ([`search_messages`] picks the query);
//! the rest of the store shares one set of queries.
//!
//! The user's text becomes words that must all appear (in any order and
//! case): a query that has no words at all (only punctuation) falls back to
//! a case-insensitive substring match, which both backends run the same way.

use chrono::{DateTime, Utc};
use colloquy_protocol::Sender;
use serde::Serialize;
use sqlx::{any::AnyRow, Row};
use uuid::Uuid;

use super::{conversations::escape_like, from_millis, parse_id, Backend, Pool, StoreError};

/// Most words of a query that are searched for (the rest are ignored), so
/// one query cannot make an arbitrarily long match expression.
pub const MAX_SEARCH_WORDS: usize = 16;

/// A message that matched, with the conversation it is in.
#[derive(Debug, Clone, Serialize)]
pub struct MessageMatch {
    pub conversation_id: Uuid,
    pub conversation_title: String,
    pub message_id: Uuid,
    pub sender: Sender,
    pub content: String,
    pub created_at: DateTime<Utc>,
}

const COLUMNS: &str = "m.id, m.conversation_id, m.sender, m.content, m.created_at, c.title";

/// The best `limit` matches for `text` among the messages of `user_id`'s
/// conversations (only that user's are read), best first, newer first
/// among equals.
pub async fn search_messages(
    pool: &Pool,
    user_id: Uuid,
    text: &str,
    limit: u32,
) -> Result<Vec<MessageMatch>, StoreError> {
    let words = words(text);
    if words.is_empty() {
        return substring_matches(pool, user_id, text, limit).await;
    }
    let backend = Backend::of_url(pool.connect_options().database_url.as_str());
    let (sql, query) = match backend {
        Some(Backend::Postgres) => (
            format!(
                "SELECT {COLUMNS}
                 FROM messages m JOIN conversations c ON c.id = m.conversation_id
                 WHERE c.user_id = $1 AND m.content != ''
                   AND to_tsvector('simple', m.content) @@ plainto_tsquery('simple', $2)
                 ORDER BY ts_rank(to_tsvector('simple', m.content), plainto_tsquery('simple', $2)) DESC,
                          m.created_at DESC, m.id DESC
                 LIMIT $3"
            ),
            // The text as typed: plainto_tsquery splits it with the parser
            // that built the index (which reads "zebra-42" as "zebra" and
            // "-42"), treats nothing in it as an operator, and requires
            // every word.
            text.to_owned(),
        ),
        _ => (
            format!(
                "SELECT {COLUMNS}
                 FROM message_search s
                 JOIN message_search_rows r ON r.row = s.rowid
                 JOIN messages m ON m.id = r.message_id
                 JOIN conversations c ON c.id = m.conversation_id
                 WHERE message_search MATCH $2 AND c.user_id = $1 AND m.content != ''
                 ORDER BY bm25(message_search), m.created_at DESC, m.id DESC
                 LIMIT $3"
            ),
            fts5_query(&words),
        ),
    };
    let rows = sqlx::query(&sql)
        .bind(user_id.to_string())
        .bind(query)
        .bind(i64::from(limit))
        .fetch_all(pool)
        .await?;
    rows.iter().map(match_from_row).collect()
}

/// The newest `limit` of the user's messages containing `text` (ASCII
/// case-insensitively): for queries without words.
async fn substring_matches(
    pool: &Pool,
    user_id: Uuid,
    text: &str,
    limit: u32,
) -> Result<Vec<MessageMatch>, StoreError> {
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS}
         FROM messages m JOIN conversations c ON c.id = m.conversation_id
         WHERE c.user_id = $1 AND m.content != '' AND LOWER(m.content) LIKE LOWER($2) ESCAPE '\\'
         ORDER BY m.created_at DESC, m.id DESC LIMIT $3"
    ))
    .bind(user_id.to_string())
    .bind(format!("%{}%", escape_like(text)))
    .bind(i64::from(limit))
    .fetch_all(pool)
    .await?;
    rows.iter().map(match_from_row).collect()
}

fn match_from_row(row: &AnyRow) -> Result<MessageMatch, StoreError> {
    let sender = match row.try_get::<String, _>("sender")?.as_str() {
        "user" => Sender::User,
        "assistant" => Sender::Assistant,
        _ => Sender::Tool,
    };
    Ok(MessageMatch {
        conversation_id: parse_id(row.try_get("conversation_id")?)?,
        conversation_title: row.try_get("title")?,
        message_id: parse_id(row.try_get("id")?)?,
        sender,
        content: row.try_get("content")?,
        created_at: from_millis(row.try_get("created_at")?),
    })
}

/// The words of a query: runs of letters and digits, as both tokenizers
/// split text, at most [`MAX_SEARCH_WORDS`]. Operators and quotes are not
/// passed on, so no query is a syntax error.
fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|word| !word.is_empty())
        .take(MAX_SEARCH_WORDS)
        .map(str::to_owned)
        .collect()
}

/// An FTS5 query requiring every word: each one quoted (a word holds only
/// letters and digits, so it never needs escaping).
fn fts5_query(words: &[String]) -> String {
    words
        .iter()
        .map(|word| format!("\"{word}\""))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use colloquy_protocol::{MessageStatus, Sender};

    use super::*;
    use crate::store::{self, testing};

    #[test]
    fn queries_become_plain_words_whatever_their_punctuation() {
        assert_eq!(words("\"tomato\" AND (soup)*"), ["tomato", "AND", "soup"]);
        assert_eq!(words("café-crème"), ["café", "crème"]);
        assert!(words("?!").is_empty());
        assert_eq!(words(&"w ".repeat(100)).len(), MAX_SEARCH_WORDS);
        assert_eq!(fts5_query(&words("red OR blue")), "\"red\" \"OR\" \"blue\"");
    }

    async fn say(pool: &Pool, conversation: Uuid, seq: u64, text: &str) -> Uuid {
        let id = Uuid::now_v7();
        store::insert_message(
            pool,
            store::NewMessage {
                id,
                conversation_id: conversation,
                sender: Sender::User,
                content: text.to_owned(),
                status: MessageStatus::Complete,
                seq,
                client_id: None,
                reply_id: None,
                error_code: None,
                parent: store::Parent::ActiveLeaf,
                activate: None,
            },
        )
        .await
        .unwrap();
        id
    }

    #[tokio::test]
    async fn every_word_must_match_the_best_match_comes_first_and_only_the_owner_is_searched() {
        let (_keep, pool, user) = testing::database().await;
        let mine = Uuid::now_v7();
        store::create_conversation(&pool, mine, user, "Cooking")
            .await
            .unwrap();
        let soup = say(
            &pool,
            mine,
            1,
            "My grandmother's tomato soup: tomato, tomato, basil.",
        )
        .await;
        let salad = say(&pool, mine, 2, "A tomato salad with feta").await;
        say(&pool, mine, 3, "Nothing about that here").await;
        let stranger = testing::another_user(&pool).await;
        let theirs = Uuid::now_v7();
        store::create_conversation(&pool, theirs, stranger, "Theirs")
            .await
            .unwrap();
        say(&pool, theirs, 1, "tomato soup, the stranger's").await;

        let found = search_messages(&pool, user, "Tomato SOUP", 10)
            .await
            .unwrap();
        let ids: Vec<Uuid> = found.iter().map(|m| m.message_id).collect();
        assert_eq!(ids, [soup], "both words are required, case aside");

        let found = search_messages(&pool, user, "tomato", 10).await.unwrap();
        let ids: Vec<Uuid> = found.iter().map(|m| m.message_id).collect();
        assert_eq!(ids, [soup, salad], "three mentions rank above one");
        assert_eq!(found[0].conversation_title, "Cooking");

        assert!(search_messages(&pool, user, "\"unbalanced (", 10)
            .await
            .unwrap()
            .is_empty());
        let punctuation = say(&pool, mine, 4, "Really?!").await;
        let found = search_messages(&pool, user, "?!", 10).await.unwrap();
        assert_eq!(
            found[0].message_id, punctuation,
            "no words: a substring match"
        );

        store::delete_conversation(&pool, mine, user).await.unwrap();
        assert!(search_messages(&pool, user, "tomato", 10)
            .await
            .unwrap()
            .is_empty());
    }
}
