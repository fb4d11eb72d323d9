//! Messages. Storing one also advances its conversation's `last_seq` and
//! `updated_at` in the same transaction, so the event numbering on disk
//! always matches what was published.

use chrono::{DateTime, Utc};
use colloquy_protocol::{MessageStatus, Sender};
use serde::Serialize;
use sqlx::{
    any::{AnyExecutor, AnyRow},
    Row,
};
use uuid::Uuid;

use super::{
    from_millis, is_foreign_key_violation, is_unique_violation, now_millis, parse_id, Pool,
    StoreError,
};

/// A stored message.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Message {
    pub id: Uuid,
    pub conversation_id: Uuid,
    pub sender: Sender,
    pub content: String,
    pub status: MessageStatus,
    pub seq: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// For a user message, the id of the reply to it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reply_id: Option<Uuid>,
    /// For a failed reply, the error code the client was sent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_code: Option<String>,
    /// The message this one follows (none for a first message); messages
    /// with the same parent are alternatives (branches).
    pub parent_id: Option<Uuid>,
    pub created_at: DateTime<Utc>,
}

/// Which message a new one follows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub enum Parent {
    /// The conversation's active leaf, read in the inserting transaction.
    #[default]
    ActiveLeaf,
    /// This one (`None`: a new first message, the edit of the first one).
    Message(Option<Uuid>),
}

/// What [`insert_message`] stores.
#[derive(Debug, Clone)]
pub struct NewMessage {
    pub id: Uuid,
    pub conversation_id: Uuid,
    pub sender: Sender,
    pub content: String,
    pub status: MessageStatus,
    pub seq: u64,
    pub client_id: Option<String>,
    pub reply_id: Option<Uuid>,
    pub error_code: Option<String>,
    pub parent: Parent,
    /// Make this message id the conversation's active leaf (a user message
    /// names its coming reply).
    pub activate: Option<Uuid>,
}

fn parse_sender(text: &str) -> Result<Sender, StoreError> {
    match text {
        "user" => Ok(Sender::User),
        "assistant" => Ok(Sender::Assistant),
        "tool" => Ok(Sender::Tool),
        other => Err(StoreError::Corrupt(format!("sender {other:?}"))),
    }
}

fn parse_status(text: &str) -> Result<MessageStatus, StoreError> {
    match text {
        "complete" => Ok(MessageStatus::Complete),
        "interrupted" => Ok(MessageStatus::Interrupted),
        "error" => Ok(MessageStatus::Error),
        other => Err(StoreError::Corrupt(format!("status {other:?}"))),
    }
}

pub(super) fn message_from_row(row: &AnyRow) -> Result<Message, StoreError> {
    let seq: i64 = row.try_get("seq")?;
    let reply_id: Option<String> = row.try_get("reply_id")?;
    let parent_id: Option<String> = row.try_get("parent_id")?;
    Ok(Message {
        id: parse_id(row.try_get("id")?)?,
        conversation_id: parse_id(row.try_get("conversation_id")?)?,
        sender: parse_sender(row.try_get("sender")?)?,
        content: row.try_get("content")?,
        status: parse_status(row.try_get("status")?)?,
        seq: u64::try_from(seq).unwrap_or_default(),
        client_id: row.try_get("client_id")?,
        reply_id: reply_id.as_deref().map(parse_id).transpose()?,
        error_code: row.try_get("error_code")?,
        parent_id: parent_id.as_deref().map(parse_id).transpose()?,
        created_at: from_millis(row.try_get("created_at")?),
    })
}

/// Store a message and advance the conversation in one transaction. The
/// first user message also titles an untitled conversation. A repeated
/// `client_id` is a [`StoreError::Conflict`]; a deleted conversation is
/// [`StoreError::NotFound`].
pub async fn insert_message(pool: &Pool, new: NewMessage) -> Result<Message, StoreError> {
    let mut tx = pool.begin().await?;
    let message = insert_message_in(&mut tx, new).await?;
    tx.commit().await?;
    Ok(message)
}

/// [`insert_message`] inside the caller's transaction.
pub async fn insert_message_in(
    conn: &mut sqlx::AnyConnection,
    new: NewMessage,
) -> Result<Message, StoreError> {
    let now = now_millis();
    let parent_id = match new.parent {
        Parent::Message(parent) => parent,
        Parent::ActiveLeaf => super::active_leaf(&mut *conn, new.conversation_id).await?,
    };
    sqlx::query(
        "INSERT INTO messages
           (id, conversation_id, sender, content, status, seq, client_id, reply_id, error_code,
            created_at, parent_id)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(new.id.to_string())
    .bind(new.conversation_id.to_string())
    .bind(new.sender.as_str())
    .bind(&new.content)
    .bind(new.status.as_str())
    .bind(new.seq as i64)
    .bind(&new.client_id)
    .bind(new.reply_id.map(|id| id.to_string()))
    .bind(&new.error_code)
    .bind(now)
    .bind(parent_id.map(|id| id.to_string()))
    .execute(&mut *conn)
    .await
    .map_err(|e| {
        if is_unique_violation(&e) {
            StoreError::Conflict("duplicate client_id")
        } else if is_foreign_key_violation(&e) {
            StoreError::NotFound
        } else {
            e.into()
        }
    })?;
    if new.sender == Sender::Assistant {
        super::checkpoints::delete_checkpoint(&mut *conn, new.id).await?;
    }
    let title = if new.sender == Sender::User {
        title_from(&new.content)
    } else {
        String::new()
    };
    sqlx::query(
        "UPDATE conversations
         SET last_seq = CASE WHEN last_seq > $1 THEN last_seq ELSE $1 END, updated_at = $2,
             title = CASE WHEN title = '' THEN $3 ELSE title END,
             title_source = CASE WHEN title = '' AND $3 <> '' THEN 'message' ELSE title_source END,
             active_leaf_id = COALESCE($5, active_leaf_id)
         WHERE id = $4",
    )
    .bind(new.seq as i64)
    .bind(now)
    .bind(title)
    .bind(new.conversation_id.to_string())
    .bind(new.activate.map(|id| id.to_string()))
    .execute(&mut *conn)
    .await?;
    Ok(Message {
        id: new.id,
        conversation_id: new.conversation_id,
        sender: new.sender,
        content: new.content,
        status: new.status,
        seq: new.seq,
        client_id: new.client_id,
        reply_id: new.reply_id,
        error_code: new.error_code,
        parent_id,
        created_at: from_millis(now),
    })
}

/// A short title from the first words of a message.
fn title_from(content: &str) -> String {
    const MAX_CHARS: usize = 60;
    let flat: String = content.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() <= MAX_CHARS {
        return flat;
    }
    let mut title: String = flat.chars().take(MAX_CHARS - 1).collect();
    title.push('…');
    title
}

/// The user message sent with this `client_id` in this conversation, if any.
pub async fn find_by_client_id(
    db: impl AnyExecutor<'_>,
    conversation_id: Uuid,
    client_id: &str,
) -> Result<Option<Message>, StoreError> {
    let row = sqlx::query("SELECT * FROM messages WHERE conversation_id = $1 AND client_id = $2")
        .bind(conversation_id.to_string())
        .bind(client_id)
        .fetch_optional(db)
        .await?;
    row.as_ref().map(message_from_row).transpose()
}

/// The message with this id in this conversation, if stored.
pub async fn find_message(
    db: impl AnyExecutor<'_>,
    conversation_id: Uuid,
    id: Uuid,
) -> Result<Option<Message>, StoreError> {
    let row = sqlx::query("SELECT * FROM messages WHERE conversation_id = $1 AND id = $2")
        .bind(conversation_id.to_string())
        .bind(id.to_string())
        .fetch_optional(db)
        .await?;
    row.as_ref().map(message_from_row).transpose()
}

/// The first `limit` messages of a conversation stored with a seq after
/// `after`, in order.
pub async fn messages_after(
    db: impl AnyExecutor<'_>,
    conversation_id: Uuid,
    after: u64,
    limit: usize,
) -> Result<Vec<Message>, StoreError> {
    let rows = sqlx::query(
        "SELECT * FROM messages WHERE conversation_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
    )
    .bind(conversation_id.to_string())
    .bind(after as i64)
    .bind(i64::try_from(limit).unwrap_or(i64::MAX))
    .fetch_all(db)
    .await?;
    rows.iter().map(message_from_row).collect()
}

/// User messages whose reply was never stored (the server stopped
/// abruptly while it was pending or streaming), oldest first.
pub async fn orphaned_user_messages(db: impl AnyExecutor<'_>) -> Result<Vec<Message>, StoreError> {
    orphaned_user_messages_since(db, 0).await
}

/// [`orphaned_user_messages`] stored after `since` (milliseconds since the epoch).
pub async fn orphaned_user_messages_since(
    db: impl AnyExecutor<'_>,
    since: i64,
) -> Result<Vec<Message>, StoreError> {
    let rows = sqlx::query(
        "SELECT u.* FROM messages u
         WHERE u.sender = 'user' AND u.reply_id IS NOT NULL AND u.created_at > $1
           AND NOT EXISTS (SELECT 1 FROM messages a WHERE a.id = u.reply_id)
         ORDER BY u.conversation_id, u.seq",
    )
    .bind(since)
    .fetch_all(db)
    .await?;
    rows.iter().map(message_from_row).collect()
}

/// All messages of a conversation, in order.
pub async fn list_messages(
    db: impl AnyExecutor<'_>,
    conversation_id: Uuid,
) -> Result<Vec<Message>, StoreError> {
    let rows = sqlx::query("SELECT * FROM messages WHERE conversation_id = $1 ORDER BY seq")
        .bind(conversation_id.to_string())
        .fetch_all(db)
        .await?;
    rows.iter().map(message_from_row).collect()
}

/// Cut a stored assistant reply down to `content` (what the listener heard
/// before speaking over it), mark it interrupted and give it `seq`, the seq
/// of the event announcing the change, so a client resuming from before it
/// receives the cut version. `None` when there is no such reply (or it
/// failed: an error reply keeps its text).
pub async fn truncate_reply(
    pool: &Pool,
    conversation_id: Uuid,
    id: Uuid,
    content: &str,
    seq: u64,
) -> Result<Option<Message>, StoreError> {
    let mut tx = pool.begin().await?;
    let row = sqlx::query(
        "UPDATE messages SET content = $1, status = 'interrupted', seq = $2
         WHERE conversation_id = $3 AND id = $4 AND sender = 'assistant' AND status != 'error'
         RETURNING *",
    )
    .bind(content)
    .bind(seq as i64)
    .bind(conversation_id.to_string())
    .bind(id.to_string())
    .fetch_optional(&mut *tx)
    .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let message = message_from_row(&row)?;
    super::advance_last_seq(&mut *tx, conversation_id, seq).await?;
    tx.commit().await?;
    Ok(Some(message))
}

#[cfg(test)]
mod tests {
    use super::title_from;

    #[test]
    fn titles_are_flattened_and_shortened() {
        assert_eq!(title_from("  hello\n  world "), "hello world");
        let long = "word ".repeat(40);
        let title = title_from(&long);
        assert_eq!(title.chars().count(), 60);
        assert!(title.ends_with('…'));
    }
}
