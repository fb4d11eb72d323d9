//! What users spent, per UTC day (`YYYY-MM-DD`, which sorts in date order)
//! and model: replies, prompt and completion tokens, voice heard and
//! spoken, tool calls. A reply's usage is added in the transaction that
//! stores the reply (see [`MessageWriter`](super::MessageWriter)), so it is
//! counted exactly once.

use serde::Serialize;
use sqlx::{
    any::{AnyExecutor, AnyRow},
    Row,
};
use uuid::Uuid;

use super::{parse_id, StoreError};

/// What one reply spent, to add to its user's day.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UsageDelta {
    pub user_id: Uuid,
    /// The UTC day, `YYYY-MM-DD`.
    pub day: String,
    pub model: String,
    pub messages: i64,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub voice_ms_in: i64,
    pub voice_ms_out: i64,
    pub tool_calls: i64,
}

/// The counters summed over some rows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct UsageCounts {
    pub messages: i64,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub voice_ms_in: i64,
    pub voice_ms_out: i64,
    pub tool_calls: i64,
}

impl UsageCounts {
    /// Prompt plus completion tokens.
    pub fn tokens(&self) -> i64 {
        self.prompt_tokens.saturating_add(self.completion_tokens)
    }

    /// Voice heard plus spoken, in milliseconds.
    pub fn voice_ms(&self) -> i64 {
        self.voice_ms_in.saturating_add(self.voice_ms_out)
    }
}

/// One user's usage of one model on one day.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct UsageDay {
    pub day: String,
    pub model: String,
    #[serde(flatten)]
    pub counts: UsageCounts,
}

/// One user's usage of one model over a range of days.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct UserUsage {
    pub user_id: Uuid,
    pub model: String,
    #[serde(flatten)]
    pub counts: UsageCounts,
}

/// The counters summed, as `BIGINT` on both backends (PostgreSQL sums
/// integers to `NUMERIC`).
const SUMS: &str = "CAST(SUM(messages) AS BIGINT) AS messages,
    CAST(SUM(prompt_tokens) AS BIGINT) AS prompt_tokens,
    CAST(SUM(completion_tokens) AS BIGINT) AS completion_tokens,
    CAST(SUM(voice_ms_in) AS BIGINT) AS voice_ms_in,
    CAST(SUM(voice_ms_out) AS BIGINT) AS voice_ms_out,
    CAST(SUM(tool_calls) AS BIGINT) AS tool_calls";

/// The counters of a row (a sum over no rows is NULL: zero).
fn counts_from_row(row: &AnyRow) -> Result<UsageCounts, StoreError> {
    let get = |name: &str| -> Result<i64, StoreError> {
        Ok(row.try_get::<Option<i64>, _>(name)?.unwrap_or(0))
    };
    Ok(UsageCounts {
        messages: get("messages")?,
        prompt_tokens: get("prompt_tokens")?,
        completion_tokens: get("completion_tokens")?,
        voice_ms_in: get("voice_ms_in")?,
        voice_ms_out: get("voice_ms_out")?,
        tool_calls: get("tool_calls")?,
    })
}

/// Add `delta` to its user's day and model. One statement, so it runs in
/// the caller's transaction.
pub async fn add_usage(db: impl AnyExecutor<'_>, delta: &UsageDelta) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO usage_daily (user_id, day, model, messages, prompt_tokens,
           completion_tokens, voice_ms_in, voice_ms_out, tool_calls)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
         ON CONFLICT (user_id, day, model) DO UPDATE SET
           messages = usage_daily.messages + excluded.messages,
           prompt_tokens = usage_daily.prompt_tokens + excluded.prompt_tokens,
           completion_tokens = usage_daily.completion_tokens + excluded.completion_tokens,
           voice_ms_in = usage_daily.voice_ms_in + excluded.voice_ms_in,
           voice_ms_out = usage_daily.voice_ms_out + excluded.voice_ms_out,
           tool_calls = usage_daily.tool_calls + excluded.tool_calls",
    )
    .bind(delta.user_id.to_string())
    .bind(&delta.day)
    .bind(&delta.model)
    .bind(delta.messages)
    .bind(delta.prompt_tokens)
    .bind(delta.completion_tokens)
    .bind(delta.voice_ms_in)
    .bind(delta.voice_ms_out)
    .bind(delta.tool_calls)
    .execute(db)
    .await?;
    Ok(())
}

/// What `user_id` spent on `day`, all models together.
pub async fn usage_on_day(
    db: impl AnyExecutor<'_>,
    user_id: Uuid,
    day: &str,
) -> Result<UsageCounts, StoreError> {
    let row = sqlx::query(&format!(
        "SELECT {SUMS} FROM usage_daily WHERE user_id = $1 AND day = $2"
    ))
    .bind(user_id.to_string())
    .bind(day)
    .fetch_one(db)
    .await?;
    counts_from_row(&row)
}

/// `user_id`'s usage per day and model, days `from..=to`, oldest first.
pub async fn user_usage_days(
    db: impl AnyExecutor<'_>,
    user_id: Uuid,
    from: &str,
    to: &str,
) -> Result<Vec<UsageDay>, StoreError> {
    let rows = sqlx::query(
        "SELECT day, model, messages, prompt_tokens, completion_tokens, voice_ms_in,
           voice_ms_out, tool_calls
         FROM usage_daily WHERE user_id = $1 AND day >= $2 AND day <= $3
         ORDER BY day, model",
    )
    .bind(user_id.to_string())
    .bind(from)
    .bind(to)
    .fetch_all(db)
    .await?;
    rows.iter()
        .map(|row| {
            Ok(UsageDay {
                day: row.try_get("day")?,
                model: row.try_get("model")?,
                counts: counts_from_row(row)?,
            })
        })
        .collect()
}

/// Every user's usage per model over days `from..=to`, the biggest token
/// spenders first, at most `limit` rows.
pub async fn usage_by_user(
    db: impl AnyExecutor<'_>,
    from: &str,
    to: &str,
    limit: i64,
) -> Result<Vec<UserUsage>, StoreError> {
    let rows = sqlx::query(&format!(
        "SELECT user_id, model, {SUMS} FROM usage_daily
         WHERE day >= $1 AND day <= $2
         GROUP BY user_id, model
         ORDER BY SUM(prompt_tokens + completion_tokens) DESC, SUM(messages) DESC, user_id, model
         LIMIT $3"
    ))
    .bind(from)
    .bind(to)
    .bind(limit)
    .fetch_all(db)
    .await?;
    rows.iter()
        .map(|row| {
            Ok(UserUsage {
                user_id: parse_id(row.try_get("user_id")?)?,
                model: row.try_get("model")?,
                counts: counts_from_row(row)?,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testing;

    fn reply(user_id: Uuid, day: &str, model: &str, completion_tokens: i64) -> UsageDelta {
        UsageDelta {
            user_id,
            day: day.into(),
            model: model.into(),
            messages: 1,
            prompt_tokens: 10,
            completion_tokens,
            voice_ms_in: 1500,
            voice_ms_out: 0,
            tool_calls: 2,
        }
    }

    #[tokio::test]
    async fn usage_adds_up_per_day_and_model() {
        let (_keep, pool, user) = testing::database().await;
        assert_eq!(
            usage_on_day(&pool, user, "2026-03-01").await.unwrap(),
            UsageCounts::default()
        );
        for delta in [
            reply(user, "2026-03-01", "a", 5),
            reply(user, "2026-03-01", "a", 7),
            reply(user, "2026-03-01", "b", 1),
            reply(user, "2026-03-02", "a", 100),
        ] {
            add_usage(&pool, &delta).await.unwrap();
        }
        let first = usage_on_day(&pool, user, "2026-03-01").await.unwrap();
        assert_eq!(
            first,
            UsageCounts {
                messages: 3,
                prompt_tokens: 30,
                completion_tokens: 13,
                voice_ms_in: 4500,
                voice_ms_out: 0,
                tool_calls: 6,
            }
        );
        assert_eq!(first.tokens(), 43);

        let days = user_usage_days(&pool, user, "2026-03-01", "2026-03-01")
            .await
            .unwrap();
        let summary: Vec<(&str, &str, i64)> = days
            .iter()
            .map(|d| (d.day.as_str(), d.model.as_str(), d.counts.completion_tokens))
            .collect();
        assert_eq!(summary, [("2026-03-01", "a", 12), ("2026-03-01", "b", 1)]);

        let all = usage_by_user(&pool, "2026-03-01", "2026-03-31", 10)
            .await
            .unwrap();
        let summary: Vec<(&str, i64, i64)> = all
            .iter()
            .map(|u| {
                (
                    u.model.as_str(),
                    u.counts.messages,
                    u.counts.completion_tokens,
                )
            })
            .collect();
        assert_eq!(summary, [("a", 3, 112), ("b", 1, 1)]);
        assert!(all.iter().all(|u| u.user_id == user));
        assert_eq!(
            usage_by_user(&pool, "2026-03-01", "2026-03-31", 1)
                .await
                .unwrap()
                .len(),
            1
        );
    }
}
