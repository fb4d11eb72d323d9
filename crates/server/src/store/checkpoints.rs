//! Crash consistency of a streaming reply: the seq range reserved ahead of
//! its deltas, and its text so far. Both are written through the
//! [`super::MessageWriter`]'s group commit; the repair at start reads them.

use sqlx::any::AnyExecutor;
use uuid::Uuid;

use super::{now_millis, StoreError};

/// What a streaming reply saves as it goes.
#[derive(Debug, Clone)]
pub struct ReplyCheckpoint {
    pub reply_id: Uuid,
    pub conversation_id: Uuid,
    /// The reply's text so far.
    pub content: String,
    /// Seqs up to this one may be published before the next checkpoint.
    pub reserve_through: u64,
}

/// Save `checkpoint` inside the caller's transaction.
pub async fn save_checkpoint_in(
    conn: &mut sqlx::AnyConnection,
    checkpoint: &ReplyCheckpoint,
) -> Result<(), StoreError> {
    let conversation_id = checkpoint.conversation_id.to_string();
    let updated =
        sqlx::query("UPDATE conversations SET seq_reserved = CASE WHEN seq_reserved > $1 THEN seq_reserved ELSE $1 END WHERE id = $2")
            .bind(checkpoint.reserve_through as i64)
            .bind(&conversation_id)
            .execute(&mut *conn)
            .await?;
    if updated.rows_affected() == 0 {
        return Err(StoreError::NotFound);
    }
    sqlx::query(
        "INSERT INTO reply_checkpoints (reply_id, conversation_id, content, updated_at)
         VALUES ($1, $2, $3, $4)
         ON CONFLICT (reply_id) DO UPDATE SET content = excluded.content, updated_at = excluded.updated_at",
    )
    .bind(checkpoint.reply_id.to_string())
    .bind(&conversation_id)
    .bind(&checkpoint.content)
    .bind(now_millis())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Forget the checkpoint of a reply that is now stored.
pub(super) async fn delete_checkpoint(
    db: impl AnyExecutor<'_>,
    reply_id: Uuid,
) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM reply_checkpoints WHERE reply_id = $1")
        .bind(reply_id.to_string())
        .execute(db)
        .await?;
    Ok(())
}

/// The text a reply had reached at its last checkpoint, if it saved one.
pub async fn checkpointed_text(
    db: impl AnyExecutor<'_>,
    reply_id: Uuid,
) -> Result<Option<String>, StoreError> {
    let row: Option<(String,)> =
        sqlx::query_as("SELECT content FROM reply_checkpoints WHERE reply_id = $1")
            .bind(reply_id.to_string())
            .fetch_optional(db)
            .await?;
    Ok(row.map(|(content,)| content))
}

/// The highest seq a conversation may have published: its stored
/// `last_seq`, or beyond it the range its replies reserved. `None` when
/// the conversation does not exist.
pub async fn highest_possible_seq(
    db: impl AnyExecutor<'_>,
    conversation_id: Uuid,
) -> Result<Option<u64>, StoreError> {
    let row: Option<(i64,)> =
        sqlx::query_as("SELECT CASE WHEN last_seq > seq_reserved THEN last_seq ELSE seq_reserved END FROM conversations WHERE id = $1")
            .bind(conversation_id.to_string())
            .fetch_optional(db)
            .await?;
    Ok(row.map(|(seq,)| u64::try_from(seq).unwrap_or_default()))
}

/// Where a conversation's numbering stands: the conversation's owner, its
/// stored `last_seq` and the highest seq its replies reserved. `None` when
/// it does not exist. A node taking over a conversation continues from here.
pub async fn numbering(
    db: impl AnyExecutor<'_>,
    conversation_id: Uuid,
) -> Result<Option<Numbering>, StoreError> {
    let row: Option<(String, i64, i64)> =
        sqlx::query_as("SELECT user_id, last_seq, seq_reserved FROM conversations WHERE id = $1")
            .bind(conversation_id.to_string())
            .fetch_optional(db)
            .await?;
    let Some((owner, last_seq, seq_reserved)) = row else {
        return Ok(None);
    };
    let owner = Uuid::parse_str(&owner).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    Ok(Some(Numbering {
        owner,
        last_seq: u64::try_from(last_seq).unwrap_or_default(),
        seq_reserved: u64::try_from(seq_reserved).unwrap_or_default(),
    }))
}

/// See [`numbering`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Numbering {
    pub owner: Uuid,
    pub last_seq: u64,
    pub seq_reserved: u64,
}
