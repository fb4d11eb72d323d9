//! Share links: a conversation's snapshot under an unguessable id, one live
//! link per conversation.

use chrono::{DateTime, Utc};
use sqlx::{any::AnyExecutor, Row};
use uuid::Uuid;

use super::{from_millis, now_millis, parse_id, Pool, StoreError};

/// A stored share.
#[derive(Debug, Clone)]
pub struct Share {
    pub id: String,
    pub conversation_id: Uuid,
    pub title: String,
    /// JSON array of `{sender, content, created_at}`.
    pub messages: String,
    pub created_at: DateTime<Utc>,
}

/// Store the share `id` of a conversation owned by `user_id`, replacing
/// the conversation's previous link. [`StoreError::NotFound`] when the
/// conversation is not the user's.
pub async fn create_share(
    pool: &Pool,
    id: &str,
    conversation_id: Uuid,
    user_id: Uuid,
    title: &str,
    messages: &str,
) -> Result<Share, StoreError> {
    let now = now_millis();
    let mut tx = pool.begin().await?;
    // A write first: on SQLite it takes the write lock at once (a deferred
    // transaction that reads first cannot wait for it and fails with busy
    // when a reply is being stored); only the caller's own link goes.
    sqlx::query("DELETE FROM shares WHERE conversation_id = $1 AND user_id = $2")
        .bind(conversation_id.to_string())
        .bind(user_id.to_string())
        .execute(&mut *tx)
        .await?;
    let owned = sqlx::query("SELECT 1 FROM conversations WHERE id = $1 AND user_id = $2")
        .bind(conversation_id.to_string())
        .bind(user_id.to_string())
        .fetch_optional(&mut *tx)
        .await?;
    if owned.is_none() {
        return Err(StoreError::NotFound);
    }
    sqlx::query(
        "INSERT INTO shares (id, conversation_id, user_id, title, messages, created_at)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(id)
    .bind(conversation_id.to_string())
    .bind(user_id.to_string())
    .bind(title)
    .bind(messages)
    .bind(now)
    .execute(&mut *tx)
    .await
    .map_err(super::not_found_if_orphan)?;
    tx.commit().await?;
    Ok(Share {
        id: id.to_owned(),
        conversation_id,
        title: title.to_owned(),
        messages: messages.to_owned(),
        created_at: from_millis(now),
    })
}

/// The share with this id, if it is live.
pub async fn find_share(db: impl AnyExecutor<'_>, id: &str) -> Result<Option<Share>, StoreError> {
    let row = sqlx::query("SELECT * FROM shares WHERE id = $1")
        .bind(id)
        .fetch_optional(db)
        .await?;
    row.map(|row| {
        Ok(Share {
            id: row.try_get("id")?,
            conversation_id: parse_id(row.try_get("conversation_id")?)?,
            title: row.try_get("title")?,
            messages: row.try_get("messages")?,
            created_at: from_millis(row.try_get("created_at")?),
        })
    })
    .transpose()
}

/// Revoke the link of a conversation owned by `user_id`; false when there
/// was none.
pub async fn delete_share(
    db: impl AnyExecutor<'_>,
    conversation_id: Uuid,
    user_id: Uuid,
) -> Result<bool, StoreError> {
    let done = sqlx::query("DELETE FROM shares WHERE conversation_id = $1 AND user_id = $2")
        .bind(conversation_id.to_string())
        .bind(user_id.to_string())
        .execute(db)
        .await?;
    Ok(done.rows_affected() > 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{self, testing};

    #[tokio::test]
    async fn sharing_again_replaces_the_link_and_only_the_owner_can() {
        let (_keep, pool, user) = testing::database().await;
        let conversation = Uuid::now_v7();
        store::create_conversation(&pool, conversation, user, "t")
            .await
            .unwrap();
        create_share(&pool, "first", conversation, user, "t", "[]")
            .await
            .unwrap();
        create_share(&pool, "second", conversation, user, "t", "[]")
            .await
            .unwrap();
        assert!(find_share(&pool, "first").await.unwrap().is_none());
        assert!(find_share(&pool, "second").await.unwrap().is_some());
        let stranger = Uuid::now_v7();
        let refused = create_share(&pool, "third", conversation, stranger, "t", "[]").await;
        assert!(matches!(refused, Err(StoreError::NotFound)));
        assert!(!delete_share(&pool, conversation, stranger).await.unwrap());
        assert!(delete_share(&pool, conversation, user).await.unwrap());
        assert!(find_share(&pool, "second").await.unwrap().is_none());
    }
}
