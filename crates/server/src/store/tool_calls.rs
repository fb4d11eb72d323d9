//! Tool calls of the agent loop: stored when they start and updated when
//! they end, each time with the seq of the `tool` event that announced it
//! and the conversation's `last_seq` advanced in the same transaction, so
//! the events can be replayed from storage and numbering never repeats them.
//! Each transaction writes first: on SQLite that takes the write lock from
//! the start, so it waits for a busy database instead of failing.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{
    any::{AnyExecutor, AnyRow},
    Row,
};
use uuid::Uuid;

use super::{from_millis, not_found_if_orphan, parse_id, Pool, StoreError};

/// A tool call as stored.
#[derive(Debug, Clone, Serialize)]
pub struct ToolCallRecord {
    pub id: Uuid,
    #[serde(skip)]
    pub conversation_id: Uuid,
    /// The reply whose generation made the call.
    pub reply_id: Uuid,
    /// Which model response of the reply made it (0 for the first).
    pub round: u32,
    /// Its place among the calls of that response.
    pub position: u32,
    /// The provider's id for the call.
    pub call_id: String,
    pub name: String,
    /// The arguments as the model wrote them (JSON text, not necessarily valid).
    pub arguments: String,
    pub start_seq: u64,
    /// `None` while the call runs.
    pub end_seq: Option<u64>,
    /// JSON text of the result, when it succeeded.
    pub result: Option<String>,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    pub duration_ms: Option<u64>,
    pub created_at: DateTime<Utc>,
}

/// How a call ended, for [`finish_tool_call`].
#[derive(Debug, Clone)]
pub struct ToolCallEnd<'a> {
    pub id: Uuid,
    pub conversation_id: Uuid,
    pub end_seq: u64,
    /// `Ok(result JSON text)` or `Err((code, message))`.
    pub outcome: Result<&'a str, (&'a str, &'a str)>,
    pub duration_ms: u64,
}

fn seq_from(value: i64) -> u64 {
    u64::try_from(value).unwrap_or_default()
}

fn record_from_row(row: &AnyRow) -> Result<ToolCallRecord, StoreError> {
    let end_seq: Option<i64> = row.try_get("end_seq")?;
    let duration_ms: Option<i64> = row.try_get("duration_ms")?;
    let small = |value: i64| u32::try_from(value).unwrap_or_default();
    Ok(ToolCallRecord {
        id: parse_id(row.try_get("id")?)?,
        conversation_id: parse_id(row.try_get("conversation_id")?)?,
        reply_id: parse_id(row.try_get("reply_id")?)?,
        round: small(row.try_get("round")?),
        position: small(row.try_get("position")?),
        call_id: row.try_get("call_id")?,
        name: row.try_get("name")?,
        arguments: row.try_get("arguments")?,
        start_seq: seq_from(row.try_get("start_seq")?),
        end_seq: end_seq.map(seq_from),
        result: row.try_get("result")?,
        error_code: row.try_get("error_code")?,
        error_message: row.try_get("error_message")?,
        duration_ms: duration_ms.map(seq_from),
        created_at: from_millis(row.try_get("created_at")?),
    })
}

/// Store a call that starts under its `start_seq` (how it ended is stored
/// by [`finish_tool_call`]). A deleted conversation is [`StoreError::NotFound`].
pub async fn insert_tool_call(pool: &Pool, new: &ToolCallRecord) -> Result<(), StoreError> {
    let mut tx = pool.begin().await?;
    sqlx::query(
        "INSERT INTO tool_calls
           (id, conversation_id, reply_id, round, position, call_id, name, arguments, start_seq, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(new.id.to_string())
    .bind(new.conversation_id.to_string())
    .bind(new.reply_id.to_string())
    .bind(i64::from(new.round))
    .bind(i64::from(new.position))
    .bind(&new.call_id)
    .bind(&new.name)
    .bind(&new.arguments)
    .bind(new.start_seq as i64)
    .bind(new.created_at.timestamp_millis())
    .execute(&mut *tx)
    .await
    .map_err(not_found_if_orphan)?;
    super::advance_last_seq(&mut *tx, new.conversation_id, new.start_seq).await?;
    tx.commit().await?;
    Ok(())
}

/// Record how a call ended, under `end_seq`. [`StoreError::NotFound`] when
/// the call is not stored (its conversation was deleted).
pub async fn finish_tool_call(pool: &Pool, end: ToolCallEnd<'_>) -> Result<(), StoreError> {
    let (result, error_code, error_message) = match end.outcome {
        Ok(result) => (Some(result), None, None),
        Err((code, message)) => (None, Some(code), Some(message)),
    };
    let mut tx = pool.begin().await?;
    let updated = sqlx::query(
        "UPDATE tool_calls
         SET end_seq = $1, result = $2, error_code = $3, error_message = $4, duration_ms = $5
         WHERE id = $6 AND conversation_id = $7",
    )
    .bind(end.end_seq as i64)
    .bind(result)
    .bind(error_code)
    .bind(error_message)
    .bind(i64::try_from(end.duration_ms).unwrap_or(i64::MAX))
    .bind(end.id.to_string())
    .bind(end.conversation_id.to_string())
    .execute(&mut *tx)
    .await?;
    if updated.rows_affected() == 0 {
        return Err(StoreError::NotFound);
    }
    super::advance_last_seq(&mut *tx, end.conversation_id, end.end_seq).await?;
    tx.commit().await?;
    Ok(())
}

/// The first `limit` calls of a conversation with an event after seq
/// `after` (their start, their end or both), by start.
pub async fn tool_calls_after(
    db: impl AnyExecutor<'_>,
    conversation_id: Uuid,
    after: u64,
    limit: usize,
) -> Result<Vec<ToolCallRecord>, StoreError> {
    let rows = sqlx::query(
        "SELECT * FROM tool_calls
         WHERE conversation_id = $1 AND (start_seq > $2 OR end_seq > $2)
         ORDER BY start_seq LIMIT $3",
    )
    .bind(conversation_id.to_string())
    .bind(after as i64)
    .bind(i64::try_from(limit).unwrap_or(i64::MAX))
    .fetch_all(db)
    .await?;
    rows.iter().map(record_from_row).collect()
}

/// The newest `limit` finished calls that started from seq `from` through
/// `through`, in the order the model made them: the tool rounds of the
/// replies in a history window.
pub async fn tool_calls_between(
    db: impl AnyExecutor<'_>,
    conversation_id: Uuid,
    from: u64,
    through: u64,
    limit: u32,
) -> Result<Vec<ToolCallRecord>, StoreError> {
    let rows = sqlx::query(
        "SELECT * FROM (
            SELECT * FROM tool_calls
            WHERE conversation_id = $1 AND start_seq >= $2 AND start_seq <= $3
              AND end_seq IS NOT NULL
            ORDER BY start_seq DESC LIMIT $4
         ) AS recent ORDER BY reply_id, round, position",
    )
    .bind(conversation_id.to_string())
    .bind(from as i64)
    .bind(through as i64)
    .bind(i64::from(limit))
    .fetch_all(db)
    .await?;
    rows.iter().map(record_from_row).collect()
}

/// The calls of the given replies, by reply in the order the model made them.
pub async fn tool_calls_of_replies(
    db: impl AnyExecutor<'_>,
    conversation_id: Uuid,
    reply_ids: &[Uuid],
) -> Result<Vec<ToolCallRecord>, StoreError> {
    if reply_ids.is_empty() {
        return Ok(Vec::new());
    }
    // One placeholder per id ($2, $3, ...): the `Any` driver has no arrays.
    let placeholders: Vec<String> = (0..reply_ids.len())
        .map(|i| format!("${}", i + 2))
        .collect();
    let sql = format!(
        "SELECT * FROM tool_calls WHERE conversation_id = $1 AND reply_id IN ({})
         ORDER BY reply_id, round, position",
        placeholders.join(", ")
    );
    let mut query = sqlx::query(&sql).bind(conversation_id.to_string());
    for id in reply_ids {
        query = query.bind(id.to_string());
    }
    let rows = query.fetch_all(db).await?;
    rows.iter().map(record_from_row).collect()
}

/// Calls of `reply_id` that never ended (the server stopped while they
/// ran), by start.
pub async fn unfinished_tool_calls(
    db: impl AnyExecutor<'_>,
    conversation_id: Uuid,
    reply_id: Uuid,
) -> Result<Vec<ToolCallRecord>, StoreError> {
    let rows = sqlx::query(
        "SELECT * FROM tool_calls
         WHERE conversation_id = $1 AND reply_id = $2 AND end_seq IS NULL
         ORDER BY start_seq",
    )
    .bind(conversation_id.to_string())
    .bind(reply_id.to_string())
    .fetch_all(db)
    .await?;
    rows.iter().map(record_from_row).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testing::database;

    async fn conversation(pool: &Pool, user: Uuid) -> Uuid {
        let id = Uuid::now_v7();
        crate::store::create_conversation(pool, id, user, "")
            .await
            .unwrap();
        id
    }

    fn call(conversation_id: Uuid, reply_id: Uuid, position: u32, seq: u64) -> ToolCallRecord {
        ToolCallRecord {
            id: Uuid::now_v7(),
            conversation_id,
            reply_id,
            round: 0,
            position,
            call_id: format!("call_{position}"),
            name: "calculate".into(),
            arguments: r#"{"expression":"6*7"}"#.into(),
            start_seq: seq,
            end_seq: None,
            result: None,
            error_code: None,
            error_message: None,
            duration_ms: None,
            created_at: chrono::Utc::now(),
        }
    }

    #[tokio::test]
    async fn a_call_is_replayable_from_its_start_and_from_its_end() {
        let (_dir, pool, user) = database().await;
        let conversation_id = conversation(&pool, user).await;
        let reply_id = Uuid::now_v7();
        let first = call(conversation_id, reply_id, 0, 3);
        let second = call(conversation_id, reply_id, 1, 4);
        insert_tool_call(&pool, &first).await.unwrap();
        insert_tool_call(&pool, &second).await.unwrap();
        let end = |id, end_seq, outcome| ToolCallEnd {
            id,
            conversation_id,
            end_seq,
            outcome,
            duration_ms: 2,
        };
        finish_tool_call(&pool, end(second.id, 5, Ok("42")))
            .await
            .unwrap();
        finish_tool_call(&pool, end(first.id, 6, Err(("timeout", "slow"))))
            .await
            .unwrap();
        let numbering = crate::store::numbering(&pool, conversation_id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(numbering.last_seq, 6, "each event advanced last_seq");

        let all = tool_calls_after(&pool, conversation_id, 0, 10)
            .await
            .unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].error_code.as_deref(), Some("timeout"));
        assert_eq!(all[1].result.as_deref(), Some("42"));
        // After seq 5 only the first call's end (6) is left to replay.
        let late = tool_calls_after(&pool, conversation_id, 5, 10)
            .await
            .unwrap();
        assert_eq!(late.len(), 1);
        assert_eq!(late[0].id, first.id);
        let ordered = tool_calls_of_replies(&pool, conversation_id, &[reply_id, Uuid::nil()])
            .await
            .unwrap();
        let positions: Vec<u32> = ordered.iter().map(|c| c.position).collect();
        assert_eq!(positions, [0, 1]);
        let window = tool_calls_between(&pool, conversation_id, 1, 10, 10)
            .await
            .unwrap();
        assert_eq!(window.len(), 2);
    }

    #[tokio::test]
    async fn unfinished_calls_are_found_and_a_deleted_conversation_stores_none() {
        let (_dir, pool, user) = database().await;
        let conversation_id = conversation(&pool, user).await;
        let reply_id = Uuid::now_v7();
        let running = call(conversation_id, reply_id, 0, 1);
        insert_tool_call(&pool, &running).await.unwrap();
        let unfinished = unfinished_tool_calls(&pool, conversation_id, reply_id)
            .await
            .unwrap();
        assert_eq!(unfinished.len(), 1);

        let gone = call(Uuid::now_v7(), reply_id, 0, 1);
        assert!(matches!(
            insert_tool_call(&pool, &gone).await,
            Err(StoreError::NotFound)
        ));
        let missing = ToolCallEnd {
            id: Uuid::now_v7(),
            conversation_id,
            end_seq: 2,
            outcome: Ok("1"),
            duration_ms: 0,
        };
        assert!(matches!(
            finish_tool_call(&pool, missing).await,
            Err(StoreError::NotFound)
        ));
    }
}
