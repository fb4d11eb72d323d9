//! Daily activity streaks (seed 000): a user message on any transport
//! counts its day, in the user's time zone; `GET /api/streak` reads the
//! run back. The server's clock is a [`Clock`] so tests can move days
//! forward without sleeping.

use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicI64, Ordering},
        Arc, Mutex, PoisonError,
    },
};

use chrono::{DateTime, Days, NaiveDate, Utc};
use chrono_tz::Tz;
use serde::Serialize;
use uuid::Uuid;

use crate::store::{self, Pool, StoreError};

/// The server's idea of now: the system clock plus an offset that only
/// tests move ([`Clock::advance`]).
#[derive(Debug, Clone, Default)]
pub struct Clock {
    offset_ms: Arc<AtomicI64>,
}

impl Clock {
    pub fn now(&self) -> DateTime<Utc> {
        let offset = chrono::Duration::milliseconds(self.offset_ms.load(Ordering::Relaxed));
        Utc::now() + offset
    }

    /// Move this clock (and every copy of it) forward by `by`.
    pub fn advance(&self, by: chrono::Duration) {
        self.offset_ms
            .fetch_add(by.num_milliseconds(), Ordering::Relaxed);
    }
}

/// A time zone by its IANA name (`Europe/Paris`, `UTC`).
pub fn parse_timezone(name: &str) -> Option<Tz> {
    name.parse().ok()
}

/// What `GET /api/streak` answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Streak {
    /// Days in a row with a message, up to today or yesterday; 0 once a day
    /// was missed.
    pub current: i64,
    pub longest: i64,
    /// `YYYY-MM-DD` in the user's time zone.
    pub last_active_date: Option<String>,
}

/// Streak bookkeeping over the store.
#[derive(Clone)]
pub struct Streaks {
    db: Pool,
    pub clock: Clock,
    /// Users whose day is already counted here, with their time zone: a
    /// later message of theirs that day reads and writes nothing. Without
    /// it every message paid a read and a committed write before its ack.
    counted: Arc<Mutex<HashMap<Uuid, (Tz, NaiveDate)>>>,
    /// Most users in `counted` (`streak_memory_users`); it is cleared when
    /// full, and those users are counted again, which changes nothing.
    max_counted: usize,
}

impl Streaks {
    pub fn new(db: Pool, clock: Clock, max_counted: usize) -> Self {
        Self {
            db,
            clock,
            counted: Arc::default(),
            max_counted,
        }
    }

    /// The time zone of `user_id`, if the user exists.
    async fn zone(&self, user_id: Uuid) -> Result<Option<Tz>, StoreError> {
        let zone = store::user_timezone(&self.db, user_id).await?;
        // The profile endpoint only stores valid names; UTC otherwise.
        Ok(zone.map(|zone| parse_timezone(&zone).unwrap_or(Tz::UTC)))
    }

    /// Today in `zone`.
    fn today(&self, zone: Tz) -> NaiveDate {
        self.clock.now().with_timezone(&zone).date_naive()
    }

    /// Today and yesterday in `zone`.
    fn days_in(&self, zone: Tz) -> (NaiveDate, NaiveDate) {
        let today = self.today(zone);
        let yesterday = today.checked_sub_days(Days::new(1)).unwrap_or(today);
        (today, yesterday)
    }

    /// Today and yesterday for `user_id`, in their time zone.
    async fn days(&self, user_id: Uuid) -> Result<Option<(NaiveDate, NaiveDate)>, StoreError> {
        Ok(self.zone(user_id).await?.map(|zone| self.days_in(zone)))
    }

    fn counted(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, (Tz, NaiveDate)>> {
        self.counted.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether today is already counted for `user_id` by this server.
    fn already_counted(&self, user_id: Uuid) -> bool {
        let counted = self.counted();
        counted
            .get(&user_id)
            .is_some_and(|(zone, day)| self.today(*zone) == *day)
    }

    /// Forget what is remembered of `user_id` (their time zone changed).
    /// Another node of a cluster keeps its memory until the user's day
    /// there ends: at worst one day counted in the old zone.
    pub fn forget(&self, user_id: Uuid) {
        self.counted().remove(&user_id);
    }

    /// Count today as active for `user_id`. Never fails the message that
    /// caused it: a failure is logged.
    pub async fn record_activity(&self, user_id: Uuid) {
        if self.already_counted(user_id) {
            return;
        }
        let counted = async {
            let Some(zone) = self.zone(user_id).await? else {
                return Ok(());
            };
            let (today, yesterday) = self.days_in(zone);
            store::count_active_day(
                &self.db,
                user_id,
                &today.to_string(),
                &yesterday.to_string(),
            )
            .await?;
            let mut counted = self.counted();
            if counted.len() >= self.max_counted {
                counted.clear();
            }
            counted.insert(user_id, (zone, today));
            Ok::<_, StoreError>(())
        };
        if let Err(error) = counted.await {
            tracing::warn!(%error, "counting the day's activity failed");
        }
    }

    /// The streak of `user_id`, if the user exists.
    pub async fn current(&self, user_id: Uuid) -> Result<Option<Streak>, StoreError> {
        let Some((_, yesterday)) = self.days(user_id).await? else {
            return Ok(None);
        };
        let Some(stored) = store::find_streak(&self.db, user_id).await? else {
            return Ok(None);
        };
        let yesterday = yesterday.to_string();
        let alive = stored
            .last_date
            .as_deref()
            .is_some_and(|last| last >= yesterday.as_str());
        Ok(Some(Streak {
            current: if alive { stored.current } else { 0 },
            longest: stored.longest,
            last_active_date: stored.last_date,
        }))
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn a_day_is_the_users_local_day() {
        let instant = Utc.with_ymd_and_hms(2026, 12, 1, 16, 30, 0).unwrap();
        let tokyo = parse_timezone("Asia/Tokyo").unwrap();
        let new_york = parse_timezone("America/New_York").unwrap();
        assert_eq!(
            instant.with_timezone(&tokyo).date_naive().to_string(),
            "2026-12-02"
        );
        assert_eq!(
            instant.with_timezone(&new_york).date_naive().to_string(),
            "2026-12-01"
        );
        assert!(parse_timezone("Mars/Olympus_Mons").is_none());
    }

    /// Clears the stored streak behind the memory's back.
    async fn wipe(pool: &Pool, user: Uuid) {
        sqlx::query(
            "UPDATE users SET streak_current = 0, streak_longest = 0, streak_last_date = NULL
             WHERE id = $1",
        )
        .bind(user.to_string())
        .execute(pool)
        .await
        .unwrap();
    }

    #[tokio::test]
    async fn a_day_is_written_once_until_it_ends_or_the_zone_changes() {
        let (_keep, pool, user) = crate::store::testing::database().await;
        let streaks = Streaks::new(pool.clone(), Clock::default(), 100);
        let stored = |pool: Pool| async move {
            store::find_streak(&pool, user)
                .await
                .unwrap()
                .unwrap()
                .last_date
        };
        streaks.record_activity(user).await;
        assert!(stored(pool.clone()).await.is_some());

        // The same day again: remembered, so nothing is written.
        wipe(&pool, user).await;
        streaks.record_activity(user).await;
        assert_eq!(stored(pool.clone()).await, None);

        // A new time zone is read again, and so is a new day.
        streaks.forget(user);
        streaks.record_activity(user).await;
        assert!(stored(pool.clone()).await.is_some());
        wipe(&pool, user).await;
        streaks.clock.advance(chrono::Duration::days(1));
        streaks.record_activity(user).await;
        assert!(stored(pool.clone()).await.is_some());
    }

    #[test]
    fn an_advanced_clock_moves_every_copy() {
        let clock = Clock::default();
        let copy = clock.clone();
        let before = copy.now();
        clock.advance(chrono::Duration::days(2));
        let moved = copy.now() - before;
        assert!(moved >= chrono::Duration::days(2), "{moved:?}");
    }
}
