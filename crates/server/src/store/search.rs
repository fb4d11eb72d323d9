//! Searching a user's own messages (the `search_conversations` tool): a
//! case-insensitive substring match that both backends run the same way.

use chrono::{DateTime, Utc};
use colloquy_protocol::Sender;
use serde::Serialize;
use sqlx::{any::AnyExecutor, Row};
use uuid::Uuid;

use super::{conversations::escape_like, from_millis, parse_id, StoreError};

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

/// The newest `limit` messages of `user_id`'s conversations whose text
/// contains `text` (ASCII case-insensitively). Only that user's
/// conversations are read.
pub async fn search_messages(
    db: impl AnyExecutor<'_>,
    user_id: Uuid,
    text: &str,
    limit: u32,
) -> Result<Vec<MessageMatch>, StoreError> {
    let pattern = format!("%{}%", escape_like(text));
    let rows = sqlx::query(
        "SELECT m.id, m.conversation_id, m.sender, m.content, m.created_at, c.title
         FROM messages m JOIN conversations c ON c.id = m.conversation_id
         WHERE c.user_id = $1 AND m.content != '' AND LOWER(m.content) LIKE LOWER($2) ESCAPE '\\'
         ORDER BY m.created_at DESC, m.id DESC LIMIT $3",
    )
    .bind(user_id.to_string())
    .bind(&pattern)
    .bind(i64::from(limit))
    .fetch_all(db)
    .await?;
    rows.iter()
        .map(|row| {
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
        })
        .collect()
}
