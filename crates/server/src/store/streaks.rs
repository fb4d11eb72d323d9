//! Daily activity streaks, kept on the user's row. Days are `YYYY-MM-DD`
//! strings in the user's time zone (the caller works them out), which
//! compare in date order.

use sqlx::{any::AnyExecutor, Row};
use uuid::Uuid;

use super::StoreError;

/// A user's streak as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredStreak {
    /// Days in a row with activity, ending on `last_date`.
    pub current: i64,
    pub longest: i64,
    pub last_date: Option<String>,
}

/// The user's time zone (an IANA name), if the user exists.
pub async fn user_timezone(
    db: impl AnyExecutor<'_>,
    user_id: Uuid,
) -> Result<Option<String>, StoreError> {
    let row = sqlx::query("SELECT timezone FROM users WHERE id = $1")
        .bind(user_id.to_string())
        .fetch_optional(db)
        .await?;
    Ok(row.map(|row| row.try_get("timezone")).transpose()?)
}

/// Count activity on `today` (`yesterday` is the day before it): the streak
/// grows by one when the last active day was yesterday, starts again at
/// one after a gap, and stays as it is for a second message the same day.
/// One statement, so concurrent messages cannot count a day twice; a day
/// before the last one counted (the user moved west) changes nothing.
pub async fn count_active_day(
    db: impl AnyExecutor<'_>,
    user_id: Uuid,
    today: &str,
    yesterday: &str,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE users SET
           streak_current = CASE WHEN streak_last_date = $2 THEN streak_current + 1 ELSE 1 END,
           streak_longest = CASE
             WHEN (CASE WHEN streak_last_date = $2 THEN streak_current + 1 ELSE 1 END) > streak_longest
             THEN (CASE WHEN streak_last_date = $2 THEN streak_current + 1 ELSE 1 END)
             ELSE streak_longest END,
           streak_last_date = $1
         WHERE id = $3 AND (streak_last_date IS NULL OR streak_last_date < $1)",
    )
    .bind(today)
    .bind(yesterday)
    .bind(user_id.to_string())
    .execute(db)
    .await?;
    Ok(())
}

/// The user's stored streak, if the user exists.
pub async fn find_streak(
    db: impl AnyExecutor<'_>,
    user_id: Uuid,
) -> Result<Option<StoredStreak>, StoreError> {
    let row = sqlx::query(
        "SELECT streak_current, streak_longest, streak_last_date FROM users WHERE id = $1",
    )
    .bind(user_id.to_string())
    .fetch_optional(db)
    .await?;
    row.map(|row| {
        Ok(StoredStreak {
            current: row.try_get("streak_current")?,
            longest: row.try_get("streak_longest")?,
            last_date: row.try_get("streak_last_date")?,
        })
    })
    .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testing;

    #[tokio::test]
    async fn consecutive_days_grow_the_streak_and_a_gap_restarts_it() {
        let (_keep, pool, user) = testing::database().await;
        let day = |today, yesterday| count_active_day(&pool, user, today, yesterday);
        day("2026-03-01", "2026-02-28").await.unwrap();
        day("2026-03-01", "2026-02-28").await.unwrap();
        day("2026-03-02", "2026-03-01").await.unwrap();
        day("2026-03-03", "2026-03-02").await.unwrap();
        let streak = find_streak(&pool, user).await.unwrap().unwrap();
        assert_eq!((streak.current, streak.longest), (3, 3));
        // A day earlier than the last counted changes nothing.
        day("2026-03-02", "2026-03-01").await.unwrap();
        day("2026-03-05", "2026-03-04").await.unwrap();
        let streak = find_streak(&pool, user).await.unwrap().unwrap();
        assert_eq!((streak.current, streak.longest), (1, 3));
        assert_eq!(streak.last_date.as_deref(), Some("2026-03-05"));
    }
}
