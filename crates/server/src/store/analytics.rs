//! Analytics events: stored in batches, read back as counts per name per
//! UTC day for administrators.

use sqlx::{any::AnyExecutor, Row};
use uuid::Uuid;

use super::{now_millis, Pool, StoreError};

/// Milliseconds in a day: `ts / DAY_MILLIS` is the UTC day number.
pub const DAY_MILLIS: i64 = 86_400_000;

/// One event to store.
#[derive(Debug, Clone)]
pub struct NewAnalyticsEvent {
    pub name: String,
    /// A JSON object, as compact text.
    pub properties: String,
    /// When it happened, in Unix milliseconds.
    pub ts: i64,
}

/// How many events named `name` happened on UTC day `day` (days since 1970).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DailyCount {
    pub day: i64,
    pub name: String,
    pub count: i64,
}

/// Store `events` of `user_id` (none for the server's own) in one transaction.
pub async fn insert_analytics_events(
    pool: &Pool,
    user_id: Option<Uuid>,
    events: &[NewAnalyticsEvent],
) -> Result<(), StoreError> {
    let received_at = now_millis();
    let user_id = user_id.map(|id| id.to_string());
    let mut tx = pool.begin().await?;
    for event in events {
        sqlx::query(
            "INSERT INTO analytics_events (id, user_id, name, properties, ts, received_at)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(Uuid::now_v7().to_string())
        .bind(&user_id)
        .bind(&event.name)
        .bind(&event.properties)
        .bind(event.ts)
        .bind(received_at)
        .execute(&mut *tx)
        .await
        .map_err(super::not_found_if_orphan)?;
    }
    tx.commit().await?;
    Ok(())
}

/// Store one of the server's own events (`turn_completed`, ...) of
/// `user_id`, happening now.
pub async fn insert_server_event(
    pool: &Pool,
    user_id: Uuid,
    name: &str,
    properties: &serde_json::Value,
) -> Result<(), StoreError> {
    let event = NewAnalyticsEvent {
        name: name.to_owned(),
        properties: properties.to_string(),
        ts: now_millis(),
    };
    insert_analytics_events(pool, Some(user_id), &[event]).await
}

/// Delete the events that happened before `before` (Unix milliseconds);
/// how many went.
pub async fn prune_analytics_events(
    db: impl AnyExecutor<'_>,
    before: i64,
) -> Result<u64, StoreError> {
    let done = sqlx::query("DELETE FROM analytics_events WHERE ts < $1")
        .bind(before)
        .execute(db)
        .await?;
    Ok(done.rows_affected())
}

/// Counts per name per UTC day of the events with `from <= ts < to`
/// (Unix milliseconds), by day then name.
pub async fn daily_analytics_counts(
    db: impl AnyExecutor<'_>,
    from: i64,
    to: i64,
) -> Result<Vec<DailyCount>, StoreError> {
    let rows = sqlx::query(
        // 86400000 is DAY_MILLIS: integer division gives the UTC day on
        // both backends.
        "SELECT ts / 86400000 AS day, name, COUNT(*) AS count FROM analytics_events
         WHERE ts >= $1 AND ts < $2
         GROUP BY day, name
         ORDER BY day, name",
    )
    .bind(from)
    .bind(to)
    .fetch_all(db)
    .await?;
    rows.iter()
        .map(|row| {
            Ok(DailyCount {
                day: row.try_get("day")?,
                name: row.try_get("name")?,
                count: row.try_get("count")?,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testing;

    fn event(name: &str, ts: i64) -> NewAnalyticsEvent {
        NewAnalyticsEvent {
            name: name.into(),
            properties: "{}".into(),
            ts,
        }
    }

    #[tokio::test]
    async fn events_are_counted_per_name_per_utc_day_within_the_range() {
        let (_keep, pool, user) = testing::database().await;
        let day = 20_000 * DAY_MILLIS;
        let events = [
            event("upgrade_click", day + 1),
            event("upgrade_click", day + DAY_MILLIS - 1),
            event("paywall_shown", day + 5),
            event("upgrade_click", day + DAY_MILLIS),
            // Outside the range asked for below.
            event("upgrade_click", day - 1),
            event("upgrade_click", day + 2 * DAY_MILLIS),
        ];
        insert_analytics_events(&pool, Some(user), &events)
            .await
            .unwrap();
        insert_analytics_events(&pool, None, &[event("turn_completed", day + 9)])
            .await
            .unwrap();
        let counts = daily_analytics_counts(&pool, day, day + 2 * DAY_MILLIS)
            .await
            .unwrap();
        let count = |day, name: &str, count| DailyCount {
            day,
            name: name.into(),
            count,
        };
        assert_eq!(
            counts,
            vec![
                count(20_000, "paywall_shown", 1),
                count(20_000, "turn_completed", 1),
                count(20_000, "upgrade_click", 2),
                count(20_001, "upgrade_click", 1),
            ]
        );
    }

    #[tokio::test]
    async fn pruning_deletes_only_older_events() {
        let (_keep, pool, user) = testing::database().await;
        let events = [event("old", 10), event("new", 20)];
        insert_analytics_events(&pool, Some(user), &events)
            .await
            .unwrap();
        assert_eq!(prune_analytics_events(&pool, 20).await.unwrap(), 1);
        let counts = daily_analytics_counts(&pool, 0, i64::MAX).await.unwrap();
        let names: Vec<&str> = counts.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["new"]);
    }

    #[tokio::test]
    async fn an_unknown_user_stores_nothing() {
        let (_keep, pool, _) = testing::database().await;
        let stored = insert_analytics_events(&pool, Some(Uuid::now_v7()), &[event("x", 1)]).await;
        assert!(matches!(stored, Err(StoreError::NotFound)), "{stored:?}");
        let counts = daily_analytics_counts(&pool, 0, i64::MAX).await.unwrap();
        assert!(counts.is_empty());
    }
}
