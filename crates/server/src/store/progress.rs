//! Progress through a plan (the voice coach's tools, seed 004): a step is
//! completed once, at a time the store records; a plan's current step is
//! its first one (by order) not completed, so completing it moves
//! `current_order` forward. Like every step change, completing one is a
//! change to its plan (the plan's `updated_at` moves, and the plan's row
//! is written first so concurrent changes take turns).

use sqlx::{any::AnyExecutor, Acquire, Any, Row};
use uuid::Uuid;

use super::{
    find_owned_step, now_millis, parse_id, steps::lock_plan_of_step, PlanWithSteps, Step,
    StoreError,
};

/// What [`complete_step`] did.
#[derive(Debug, Clone)]
pub struct Completion {
    /// The step, with its `completed_at`.
    pub step: Step,
    /// False when it had been completed before (its time is kept).
    pub newly_completed: bool,
}

/// Mark a step of `user_id`'s as completed now, unless it already is.
/// [`StoreError::NotFound`] if there is no such step of theirs.
pub async fn complete_step(
    db: impl Acquire<'_, Database = Any>,
    step_id: Uuid,
    user_id: Uuid,
) -> Result<Completion, StoreError> {
    let now = now_millis();
    let mut tx = db.begin().await?;
    lock_plan_of_step(&mut tx, step_id, user_id, now).await?;
    let done = sqlx::query(
        "UPDATE plan_steps SET completed_at = $1, updated_at = $2
         WHERE id = $3 AND user_id = $4 AND completed_at IS NULL",
    )
    .bind(now)
    .bind(now)
    .bind(step_id.to_string())
    .bind(user_id.to_string())
    .execute(&mut *tx)
    .await?;
    let step = find_owned_step(&mut *tx, step_id, user_id)
        .await?
        .ok_or(StoreError::NotFound)?;
    tx.commit().await?;
    Ok(Completion {
        step,
        newly_completed: done.rows_affected() > 0,
    })
}

/// The plan step conversation `conversation_id` of `user_id`'s talks about
/// (a voice session's), if any.
pub async fn conversation_step(
    db: impl AnyExecutor<'_>,
    conversation_id: Uuid,
    user_id: Uuid,
) -> Result<Option<Uuid>, StoreError> {
    let row = sqlx::query("SELECT step_id FROM conversations WHERE id = $1 AND user_id = $2")
        .bind(conversation_id.to_string())
        .bind(user_id.to_string())
        .fetch_optional(db)
        .await?;
    match row {
        Some(row) => row
            .try_get::<Option<String>, _>("step_id")?
            .map(|id| parse_id(&id))
            .transpose(),
        None => Ok(None),
    }
}

impl PlanWithSteps {
    /// The order of the first step not completed; `None` once all are.
    pub fn current_order(&self) -> Option<i64> {
        self.steps
            .iter()
            .find(|step| step.completed_at.is_none())
            .map(|step| step.order)
    }

    /// How many steps are completed.
    pub fn completed_steps(&self) -> usize {
        self.steps
            .iter()
            .filter(|step| step.completed_at.is_some())
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{
        self, find_owned_plan_with_steps,
        testing::{another_user, database, ids_in_order, plan},
    };

    #[tokio::test]
    async fn completing_steps_moves_the_current_step_and_only_the_owner_can() {
        let (_keep, pool, user) = database().await;
        let plan = plan(&pool, user, &["a", "b"]).await;
        let ids = ids_in_order(&pool, plan.id).await;
        let progress = |pool: store::Pool| async move {
            find_owned_plan_with_steps(&pool, plan.id, user)
                .await
                .unwrap()
                .unwrap()
        };
        assert_eq!(progress(pool.clone()).await.current_order(), Some(1));

        let stranger = another_user(&pool).await;
        let stolen = complete_step(&pool, ids[0], stranger).await;
        assert!(matches!(stolen, Err(StoreError::NotFound)));

        let first = complete_step(&pool, ids[0], user).await.unwrap();
        assert!(first.newly_completed);
        let when = first.step.completed_at.expect("a completion time");
        let again = complete_step(&pool, ids[0], user).await.unwrap();
        assert!(!again.newly_completed);
        assert_eq!(
            again.step.completed_at,
            Some(when),
            "the first time is kept"
        );
        let now = progress(pool.clone()).await;
        assert_eq!((now.current_order(), now.completed_steps()), (Some(2), 1));
        assert!(now.plan.updated_at >= when);

        complete_step(&pool, ids[1], user).await.unwrap();
        assert_eq!(progress(pool.clone()).await.current_order(), None);
    }
}
