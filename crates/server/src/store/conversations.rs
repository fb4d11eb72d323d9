//! Conversations, always looked up together with their owner so one user can
//! never reach another's.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{
    any::{AnyExecutor, AnyRow},
    Row,
};
use uuid::Uuid;

use super::{from_millis, is_unique_violation, now_millis, parse_id, StoreError};

/// A conversation's metadata.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Conversation {
    pub id: Uuid,
    pub user_id: Uuid,
    pub title: String,
    /// The seq of the conversation's newest stored event.
    pub last_seq: u64,
    pub started_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

fn conversation_from_row(row: &AnyRow) -> Result<Conversation, StoreError> {
    let last_seq: i64 = row.try_get("last_seq")?;
    Ok(Conversation {
        id: parse_id(row.try_get("id")?)?,
        user_id: parse_id(row.try_get("user_id")?)?,
        title: row.try_get("title")?,
        last_seq: u64::try_from(last_seq).unwrap_or_default(),
        started_at: from_millis(row.try_get("started_at")?),
        updated_at: from_millis(row.try_get("updated_at")?),
    })
}

/// The user's most recently active conversation on plan step `step_id`
/// (a voice session continues it), if any.
pub async fn latest_step_conversation(
    db: impl AnyExecutor<'_>,
    user_id: Uuid,
    step_id: Uuid,
) -> Result<Option<Conversation>, StoreError> {
    let row = sqlx::query(
        "SELECT * FROM conversations WHERE user_id = $1 AND step_id = $2
         ORDER BY updated_at DESC, id DESC LIMIT 1",
    )
    .bind(user_id.to_string())
    .bind(step_id.to_string())
    .fetch_optional(db)
    .await?;
    row.as_ref().map(conversation_from_row).transpose()
}

/// Tie a conversation to the plan step it talks about.
pub async fn attach_step(
    db: impl AnyExecutor<'_>,
    id: Uuid,
    step_id: Uuid,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE conversations SET step_id = $1 WHERE id = $2")
        .bind(step_id.to_string())
        .bind(id.to_string())
        .execute(db)
        .await?;
    Ok(())
}

/// Create a conversation with the given id; an id already in use is a conflict.
pub async fn create_conversation(
    db: impl AnyExecutor<'_>,
    id: Uuid,
    user_id: Uuid,
    title: &str,
) -> Result<Conversation, StoreError> {
    let now = now_millis();
    sqlx::query(
        "INSERT INTO conversations (id, user_id, title, last_seq, started_at, updated_at)
         VALUES ($1, $2, $3, 0, $4, $5)",
    )
    .bind(id.to_string())
    .bind(user_id.to_string())
    .bind(title)
    .bind(now)
    .bind(now)
    .execute(db)
    .await
    .map_err(|e| {
        if is_unique_violation(&e) {
            StoreError::Conflict("conversation id already in use")
        } else {
            e.into()
        }
    })?;
    Ok(Conversation {
        id,
        user_id,
        title: title.to_owned(),
        last_seq: 0,
        started_at: from_millis(now),
        updated_at: from_millis(now),
    })
}

/// The conversation if it exists and belongs to `user_id`.
pub async fn find_conversation(
    db: impl AnyExecutor<'_>,
    id: Uuid,
    user_id: Uuid,
) -> Result<Option<Conversation>, StoreError> {
    let row = sqlx::query("SELECT * FROM conversations WHERE id = $1 AND user_id = $2")
        .bind(id.to_string())
        .bind(user_id.to_string())
        .fetch_optional(db)
        .await?;
    row.as_ref().map(conversation_from_row).transpose()
}

/// Whether any user owns a conversation with this id.
pub async fn conversation_exists(db: impl AnyExecutor<'_>, id: Uuid) -> Result<bool, StoreError> {
    let row = sqlx::query("SELECT 1 FROM conversations WHERE id = $1")
        .bind(id.to_string())
        .fetch_optional(db)
        .await?;
    Ok(row.is_some())
}

/// One page of a user's conversations, most recently updated first.
pub async fn list_conversations(
    db: impl AnyExecutor<'_>,
    user_id: Uuid,
    limit: u32,
    offset: u32,
) -> Result<Vec<Conversation>, StoreError> {
    let rows = sqlx::query(
        "SELECT * FROM conversations WHERE user_id = $1
         ORDER BY updated_at DESC, id DESC LIMIT $2 OFFSET $3",
    )
    .bind(user_id.to_string())
    .bind(i64::from(limit))
    .bind(i64::from(offset))
    .fetch_all(db)
    .await?;
    rows.iter().map(conversation_from_row).collect()
}

/// The user's conversations whose title or any message contains `text`
/// (ASCII case-insensitively), newest first.
pub async fn search_conversations(
    db: impl AnyExecutor<'_>,
    user_id: Uuid,
    text: &str,
    limit: u32,
    offset: u32,
) -> Result<Vec<Conversation>, StoreError> {
    let pattern = format!("%{}%", escape_like(text));
    let rows = sqlx::query(
        "SELECT * FROM conversations c
         WHERE c.user_id = $1
           AND (LOWER(c.title) LIKE LOWER($2) ESCAPE '\\'
                OR EXISTS (SELECT 1 FROM messages m
                           WHERE m.conversation_id = c.id AND LOWER(m.content) LIKE LOWER($3) ESCAPE '\\'))
         ORDER BY c.updated_at DESC, c.id DESC LIMIT $4 OFFSET $5",
    )
    .bind(user_id.to_string())
    .bind(&pattern)
    .bind(&pattern)
    .bind(i64::from(limit))
    .bind(i64::from(offset))
    .fetch_all(db)
    .await?;
    rows.iter().map(conversation_from_row).collect()
}

/// `text` with LIKE's wildcards taken literally.
pub(super) fn escape_like(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

/// Rename a conversation owned by `user_id`.
pub async fn rename_conversation(
    db: impl AnyExecutor<'_>,
    id: Uuid,
    user_id: Uuid,
    title: &str,
) -> Result<(), StoreError> {
    let done = sqlx::query(
        "UPDATE conversations SET title = $1, title_source = 'user', updated_at = $2
         WHERE id = $3 AND user_id = $4",
    )
    .bind(title)
    .bind(now_millis())
    .bind(id.to_string())
    .bind(user_id.to_string())
    .execute(db)
    .await?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

/// Delete a conversation owned by `user_id`, with its messages.
pub async fn delete_conversation(
    db: impl AnyExecutor<'_>,
    id: Uuid,
    user_id: Uuid,
) -> Result<(), StoreError> {
    let done = sqlx::query("DELETE FROM conversations WHERE id = $1 AND user_id = $2")
        .bind(id.to_string())
        .bind(user_id.to_string())
        .execute(db)
        .await?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

/// Give every conversation of `from` to `to`; returns how many moved.
pub async fn transfer_conversations(
    db: impl AnyExecutor<'_>,
    from: Uuid,
    to: Uuid,
) -> Result<u64, StoreError> {
    let done = sqlx::query("UPDATE conversations SET user_id = $1 WHERE user_id = $2")
        .bind(to.to_string())
        .bind(from.to_string())
        .execute(db)
        .await?;
    Ok(done.rows_affected())
}

/// Record that events up to `seq` were published (for events stored nowhere else).
pub async fn advance_last_seq(
    db: impl AnyExecutor<'_>,
    id: Uuid,
    seq: u64,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE conversations SET last_seq = CASE WHEN last_seq > $1 THEN last_seq ELSE $1 END WHERE id = $2")
        .bind(seq as i64)
        .bind(id.to_string())
        .execute(db)
        .await?;
    Ok(())
}

/// Claim the one attempt at a generated title: true when the conversation's
/// title still comes from its first message (and is now `pending`).
pub async fn claim_title_generation(
    db: impl AnyExecutor<'_>,
    id: Uuid,
) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE conversations SET title_source = 'pending' WHERE id = $1 AND title_source = 'message'",
    )
    .bind(id.to_string())
    .execute(db)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Finish a claimed attempt: store `title` (as generated) unless the user
/// renamed the conversation meanwhile; `None` gives the attempt back, so a
/// later reply tries again. True when `title` was stored.
pub async fn finish_title_generation(
    db: impl AnyExecutor<'_>,
    id: Uuid,
    title: Option<&str>,
) -> Result<bool, StoreError> {
    let done = match title {
        Some(title) => {
            sqlx::query(
                "UPDATE conversations SET title = $1, title_source = 'model', updated_at = $2
                 WHERE id = $3 AND title_source = 'pending'",
            )
            .bind(title)
            .bind(now_millis())
            .bind(id.to_string())
            .execute(db)
            .await?
        }
        None => {
            sqlx::query(
                "UPDATE conversations SET title_source = 'message'
                 WHERE id = $1 AND title_source = 'pending'",
            )
            .bind(id.to_string())
            .execute(db)
            .await?
        }
    };
    Ok(done.rows_affected() == 1)
}

/// Give back the title attempts a stopped server left `pending`, so the
/// next reply in those conversations tries again.
pub async fn release_pending_titles(db: impl AnyExecutor<'_>) -> Result<u64, StoreError> {
    let done = sqlx::query(
        "UPDATE conversations SET title_source = 'message' WHERE title_source = 'pending'",
    )
    .execute(db)
    .await?;
    Ok(done.rows_affected())
}
