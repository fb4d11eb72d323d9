//! The plan each user is on, as billing last set it. No row means the
//! configured default plan (or the anonymous plan for guests); the names
//! are those of `[plans.<name>]` in the configuration.

use chrono::{DateTime, Utc};
use sqlx::{
    any::{AnyExecutor, AnyRow},
    Row,
};
use uuid::Uuid;

use super::{from_millis, not_found_if_orphan, now_millis, parse_id, StoreError};

/// A user's plan row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserPlan {
    pub user_id: Uuid,
    /// A plan name from the configuration.
    pub plan: String,
    /// The subscription's status (`active`, `trialing`, `past_due`, `canceled`, ...).
    pub status: String,
    /// When the current period ends and the subscription renews (or ends,
    /// with `cancel_at_period_end`).
    pub renews_at: Option<DateTime<Utc>>,
    pub cancel_at_period_end: bool,
    pub updated_at: DateTime<Utc>,
}

/// What [`set_user_plan`] stores.
#[derive(Debug, Clone)]
pub struct NewUserPlan<'a> {
    pub user_id: Uuid,
    pub plan: &'a str,
    pub status: &'a str,
    pub renews_at: Option<DateTime<Utc>>,
    pub cancel_at_period_end: bool,
}

fn user_plan_from_row(row: &AnyRow) -> Result<UserPlan, StoreError> {
    Ok(UserPlan {
        user_id: parse_id(row.try_get("user_id")?)?,
        plan: row.try_get("plan")?,
        status: row.try_get("status")?,
        renews_at: row.try_get::<Option<i64>, _>("renews_at")?.map(from_millis),
        cancel_at_period_end: row.try_get::<i64, _>("cancel_at_period_end")? != 0,
        updated_at: from_millis(row.try_get("updated_at")?),
    })
}

/// The plan row of `user_id`, if billing ever set one.
pub async fn find_user_plan(
    db: impl AnyExecutor<'_>,
    user_id: Uuid,
) -> Result<Option<UserPlan>, StoreError> {
    let row = sqlx::query(
        "SELECT user_id, plan, status, renews_at, cancel_at_period_end, updated_at
         FROM user_plans WHERE user_id = $1",
    )
    .bind(user_id.to_string())
    .fetch_optional(db)
    .await?;
    row.as_ref().map(user_plan_from_row).transpose()
}

/// Put the user on a plan, replacing any earlier row. One statement, so it
/// can run inside the caller's transaction (billing stores the payment
/// event it acts on in the same one). A missing user is
/// [`StoreError::NotFound`].
pub async fn set_user_plan(
    db: impl AnyExecutor<'_>,
    new: &NewUserPlan<'_>,
) -> Result<UserPlan, StoreError> {
    let row = sqlx::query(
        "INSERT INTO user_plans (user_id, plan, status, renews_at, cancel_at_period_end, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (user_id) DO UPDATE SET
           plan = excluded.plan,
           status = excluded.status,
           renews_at = excluded.renews_at,
           cancel_at_period_end = excluded.cancel_at_period_end,
           updated_at = excluded.updated_at
         RETURNING user_id, plan, status, renews_at, cancel_at_period_end, updated_at",
    )
    .bind(new.user_id.to_string())
    .bind(new.plan)
    .bind(new.status)
    .bind(new.renews_at.map(|at| at.timestamp_millis()))
    .bind(i64::from(new.cancel_at_period_end))
    .bind(now_millis())
    .fetch_one(db)
    .await
    .map_err(not_found_if_orphan)?;
    user_plan_from_row(&row)
}

/// Drop the user's plan row, back to the default plan; whether there was one.
pub async fn clear_user_plan(db: impl AnyExecutor<'_>, user_id: Uuid) -> Result<bool, StoreError> {
    let done = sqlx::query("DELETE FROM user_plans WHERE user_id = $1")
        .bind(user_id.to_string())
        .execute(db)
        .await?;
    Ok(done.rows_affected() > 0)
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;
    use crate::store::testing;

    fn pro(user_id: Uuid) -> NewUserPlan<'static> {
        NewUserPlan {
            user_id,
            plan: "pro",
            status: "active",
            renews_at: Utc.timestamp_millis_opt(1_800_000_000_000).single(),
            cancel_at_period_end: false,
        }
    }

    #[tokio::test]
    async fn a_set_plan_reads_back_and_a_second_set_replaces_it() {
        let (_keep, pool, user) = testing::database().await;
        assert_eq!(find_user_plan(&pool, user).await.unwrap(), None);

        let stored = set_user_plan(&pool, &pro(user)).await.unwrap();
        assert_eq!(
            find_user_plan(&pool, user).await.unwrap().as_ref(),
            Some(&stored)
        );
        assert_eq!(stored.plan, "pro");
        assert_eq!(stored.renews_at, pro(user).renews_at);

        let canceling = NewUserPlan {
            cancel_at_period_end: true,
            renews_at: None,
            status: "canceled",
            ..pro(user)
        };
        set_user_plan(&pool, &canceling).await.unwrap();
        let read = find_user_plan(&pool, user).await.unwrap().unwrap();
        assert_eq!(
            (
                read.status.as_str(),
                read.renews_at,
                read.cancel_at_period_end
            ),
            ("canceled", None, true)
        );

        assert!(clear_user_plan(&pool, user).await.unwrap());
        assert_eq!(find_user_plan(&pool, user).await.unwrap(), None);
    }

    #[tokio::test]
    async fn a_plan_set_in_a_rolled_back_transaction_is_not_kept() {
        let (_keep, pool, user) = testing::database().await;
        let mut tx = pool.begin().await.unwrap();
        set_user_plan(&mut *tx, &pro(user)).await.unwrap();
        tx.rollback().await.unwrap();
        assert_eq!(find_user_plan(&pool, user).await.unwrap(), None);

        let mut tx = pool.begin().await.unwrap();
        set_user_plan(&mut *tx, &pro(user)).await.unwrap();
        tx.commit().await.unwrap();
        assert!(find_user_plan(&pool, user).await.unwrap().is_some());
    }

    #[tokio::test]
    async fn a_plan_for_a_missing_user_is_not_found() {
        let (_keep, pool, _user) = testing::database().await;
        let error = set_user_plan(&pool, &pro(Uuid::now_v7()))
            .await
            .unwrap_err();
        assert!(matches!(error, StoreError::NotFound), "{error:?}");
    }
}
