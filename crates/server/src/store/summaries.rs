//! Conversation summaries: one per conversation, saying what the path up to
//! its `through_message_id` was about. Both the summary endpoint and the
//! rolling summary of trimmed history write it, each replacing only the
//! summary it read (compare and set), so two writers racing cannot replace
//! each other's work with one made from a stale start.

use chrono::{DateTime, Utc};
use sqlx::{
    any::{AnyExecutor, AnyRow},
    Row,
};
use uuid::Uuid;

use super::{from_millis, now_millis, parse_id, StoreError};

/// A stored summary.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredSummary {
    pub summary: String,
    /// The newest message the summary covers.
    pub through_message_id: Uuid,
    /// That message's seq.
    pub through_seq: u64,
    pub updated_at: DateTime<Utc>,
}

/// What [`save_summary`] writes.
#[derive(Debug, Clone, Copy)]
pub struct NewSummary<'a> {
    pub summary: &'a str,
    pub through_message_id: Uuid,
    pub through_seq: u64,
}

fn summary_from_row(row: &AnyRow) -> Result<StoredSummary, StoreError> {
    let seq: i64 = row.try_get("through_seq")?;
    Ok(StoredSummary {
        summary: row.try_get("summary")?,
        through_message_id: parse_id(row.try_get("through_message_id")?)?,
        through_seq: u64::try_from(seq).unwrap_or_default(),
        updated_at: from_millis(row.try_get("updated_at")?),
    })
}

/// Store the summary of `conversation_id` in place of the one through
/// `replacing` (`None`: in place of none); returns whether it was written,
/// false when the stored summary is no longer that one. A deleted
/// conversation refuses it ([`StoreError::NotFound`]).
pub async fn save_summary(
    db: impl AnyExecutor<'_>,
    conversation_id: Uuid,
    new: NewSummary<'_>,
    replacing: Option<Uuid>,
) -> Result<bool, StoreError> {
    let query = match replacing {
        None => sqlx::query(
            "INSERT INTO conversation_summaries
               (conversation_id, summary, through_message_id, through_seq, updated_at)
             SELECT $1, $2, $3, $4, $5 WHERE EXISTS (SELECT 1 FROM conversations WHERE id = $1)
             ON CONFLICT (conversation_id) DO NOTHING",
        ),
        Some(_) => sqlx::query(
            "UPDATE conversation_summaries SET summary = $2, through_message_id = $3,
               through_seq = $4, updated_at = $5
             WHERE conversation_id = $1 AND through_message_id = $6",
        ),
    };
    let mut query = query
        .bind(conversation_id.to_string())
        .bind(new.summary)
        .bind(new.through_message_id.to_string())
        .bind(i64::try_from(new.through_seq).unwrap_or(i64::MAX))
        .bind(now_millis());
    if let Some(replacing) = replacing {
        query = query.bind(replacing.to_string());
    }
    let written = query.execute(db).await?;
    Ok(written.rows_affected() > 0)
}

/// The stored summary of `conversation_id`, if it has one.
pub async fn find_summary(
    db: impl AnyExecutor<'_>,
    conversation_id: Uuid,
) -> Result<Option<StoredSummary>, StoreError> {
    let row = sqlx::query("SELECT * FROM conversation_summaries WHERE conversation_id = $1")
        .bind(conversation_id.to_string())
        .fetch_optional(db)
        .await?;
    row.as_ref().map(summary_from_row).transpose()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{self, testing};

    fn summary(text: &str, through_seq: u64) -> NewSummary<'_> {
        NewSummary {
            summary: text,
            through_message_id: Uuid::from_u128(u128::from(through_seq)),
            through_seq,
        }
    }

    #[tokio::test]
    async fn a_summary_replaces_only_the_one_it_read_and_goes_with_its_conversation() {
        let (_keep, pool, user) = testing::database().await;
        let id = Uuid::now_v7();
        store::create_conversation(&pool, id, user, "t")
            .await
            .unwrap();
        assert_eq!(find_summary(&pool, id).await.unwrap(), None);

        let four = Some(Uuid::from_u128(4));
        assert!(save_summary(&pool, id, summary("first", 4), None)
            .await
            .unwrap());
        // A writer that read no summary, or another one, is refused.
        assert!(!save_summary(&pool, id, summary("racer", 5), None)
            .await
            .unwrap());
        assert!(save_summary(&pool, id, summary("later", 9), four)
            .await
            .unwrap());
        assert!(!save_summary(&pool, id, summary("stale", 6), four)
            .await
            .unwrap());
        let stored = find_summary(&pool, id).await.unwrap().unwrap();
        assert_eq!(stored.summary, "later");
        assert_eq!(stored.through_seq, 9);
        assert_eq!(stored.through_message_id, Uuid::from_u128(9));
        // Another branch's summary may have a lower seq: it still replaces.
        let nine = Some(Uuid::from_u128(9));
        assert!(save_summary(&pool, id, summary("branch", 3), nine)
            .await
            .unwrap());
        assert_eq!(
            find_summary(&pool, id).await.unwrap().unwrap().summary,
            "branch"
        );

        store::delete_conversation(&pool, id, user).await.unwrap();
        assert_eq!(find_summary(&pool, id).await.unwrap(), None);
        // Nor can a summary outlive (or precede) its conversation.
        assert!(!save_summary(&pool, id, summary("gone", 12), None)
            .await
            .unwrap());
    }
}
