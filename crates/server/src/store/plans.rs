//! Coaching plans (seed 004's "impacts"): a title and description owned by
//! a user, with the ordered [`steps`](super::steps) that make them up.
//!
//! Two kinds of lookup: the CRUD functions take the caller's `user_id` and
//! treat another user's plan as missing, while [`find_plan`] is unscoped,
//! for the voice socket, which checks ownership itself to close with a
//! precise reason.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{
    any::{AnyExecutor, AnyRow},
    Acquire, Any, Row,
};
use uuid::Uuid;

use super::{
    from_millis, not_found_if_orphan, now_millis, parse_id,
    steps::{
        insert_step, plan_steps, NewStep, Placement, Step, MAX_STEPS_PER_PLAN, TOO_MANY_STEPS,
    },
    StoreError,
};

/// A plan (an "impact" in seed 004).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Plan {
    pub id: Uuid,
    pub user_id: Uuid,
    pub title: String,
    pub description: String,
    pub created_at: DateTime<Utc>,
    /// Changes whenever the plan or any of its steps does.
    pub updated_at: DateTime<Utc>,
}

/// A plan with its steps in order.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PlanWithSteps {
    #[serde(flatten)]
    pub plan: Plan,
    pub steps: Vec<Step>,
}

/// What [`create_plan`] stores.
#[derive(Debug, Clone, Copy)]
pub struct NewPlan<'a> {
    pub user_id: Uuid,
    pub title: &'a str,
    pub description: &'a str,
    /// Initial steps, numbered 1..n in this order.
    pub steps: &'a [NewStep<'a>],
}

/// Changes to a plan; `None` leaves a field as it is.
#[derive(Debug, Clone, Copy, Default)]
pub struct PlanChanges<'a> {
    pub title: Option<&'a str>,
    pub description: Option<&'a str>,
}

fn plan_from_row(row: &AnyRow) -> Result<Plan, StoreError> {
    Ok(Plan {
        id: parse_id(row.try_get("id")?)?,
        user_id: parse_id(row.try_get("user_id")?)?,
        title: row.try_get("title")?,
        description: row.try_get("description")?,
        created_at: from_millis(row.try_get("created_at")?),
        updated_at: from_millis(row.try_get("updated_at")?),
    })
}

/// Store a plan with its initial steps (numbered 1..n) in one transaction.
/// More than [`MAX_STEPS_PER_PLAN`] steps is a [`StoreError::Conflict`]; a
/// missing user is [`StoreError::NotFound`].
pub async fn create_plan(
    db: impl Acquire<'_, Database = Any>,
    new: NewPlan<'_>,
) -> Result<PlanWithSteps, StoreError> {
    if new.steps.len() > MAX_STEPS_PER_PLAN {
        return Err(StoreError::Conflict(TOO_MANY_STEPS));
    }
    let now = now_millis();
    let plan = Plan {
        id: Uuid::now_v7(),
        user_id: new.user_id,
        title: new.title.to_owned(),
        description: new.description.to_owned(),
        created_at: from_millis(now),
        updated_at: from_millis(now),
    };
    let mut tx = db.begin().await?;
    sqlx::query(
        "INSERT INTO plans (id, user_id, title, description, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(plan.id.to_string())
    .bind(plan.user_id.to_string())
    .bind(&plan.title)
    .bind(&plan.description)
    .bind(now)
    .bind(now)
    .execute(&mut *tx)
    .await
    .map_err(not_found_if_orphan)?;
    let mut steps = Vec::with_capacity(new.steps.len());
    for (index, step) in new.steps.iter().enumerate() {
        // At most MAX_STEPS_PER_PLAN, so the conversion cannot overflow.
        let order = index as i64 + 1;
        let place = Placement {
            plan_id: plan.id,
            user_id: plan.user_id,
            order,
            now,
        };
        steps.push(insert_step(&mut tx, place, step).await?);
    }
    tx.commit().await?;
    Ok(PlanWithSteps { plan, steps })
}

/// A user's plans, most recently updated first.
pub async fn list_plans(
    db: impl AnyExecutor<'_>,
    user_id: Uuid,
    limit: u32,
    offset: u32,
) -> Result<Vec<Plan>, StoreError> {
    let rows = sqlx::query(
        "SELECT * FROM plans WHERE user_id = $1
         ORDER BY updated_at DESC, id DESC LIMIT $2 OFFSET $3",
    )
    .bind(user_id.to_string())
    .bind(i64::from(limit))
    .bind(i64::from(offset))
    .fetch_all(db)
    .await?;
    rows.iter().map(plan_from_row).collect()
}

/// The plan with this id, whoever owns it (the caller checks ownership).
pub async fn find_plan(
    db: impl AnyExecutor<'_>,
    plan_id: Uuid,
) -> Result<Option<Plan>, StoreError> {
    let row = sqlx::query("SELECT * FROM plans WHERE id = $1")
        .bind(plan_id.to_string())
        .fetch_optional(db)
        .await?;
    row.as_ref().map(plan_from_row).transpose()
}

/// The plan if it exists and belongs to `user_id`.
pub async fn find_owned_plan(
    db: impl AnyExecutor<'_>,
    plan_id: Uuid,
    user_id: Uuid,
) -> Result<Option<Plan>, StoreError> {
    let row = sqlx::query("SELECT * FROM plans WHERE id = $1 AND user_id = $2")
        .bind(plan_id.to_string())
        .bind(user_id.to_string())
        .fetch_optional(db)
        .await?;
    row.as_ref().map(plan_from_row).transpose()
}

/// The plan and its ordered steps, read in one transaction so they agree,
/// if the plan exists and belongs to `user_id`.
pub async fn find_owned_plan_with_steps(
    db: impl Acquire<'_, Database = Any>,
    plan_id: Uuid,
    user_id: Uuid,
) -> Result<Option<PlanWithSteps>, StoreError> {
    let mut tx = db.begin().await?;
    let Some(plan) = find_owned_plan(&mut *tx, plan_id, user_id).await? else {
        return Ok(None);
    };
    let steps = plan_steps(&mut *tx, plan_id).await?;
    tx.commit().await?;
    Ok(Some(PlanWithSteps { plan, steps }))
}

/// Change a plan owned by `user_id` and return it; [`StoreError::NotFound`]
/// if there is no such plan.
pub async fn update_plan(
    db: impl AnyExecutor<'_>,
    plan_id: Uuid,
    user_id: Uuid,
    changes: PlanChanges<'_>,
) -> Result<Plan, StoreError> {
    let row = sqlx::query(
        "UPDATE plans SET
           title = COALESCE($1, title),
           description = COALESCE($2, description),
           updated_at = $3
         WHERE id = $4 AND user_id = $5
         RETURNING *",
    )
    .bind(changes.title)
    .bind(changes.description)
    .bind(now_millis())
    .bind(plan_id.to_string())
    .bind(user_id.to_string())
    .fetch_optional(db)
    .await?;
    row.as_ref()
        .map(plan_from_row)
        .transpose()?
        .ok_or(StoreError::NotFound)
}

/// Delete a plan owned by `user_id`, with its steps (by cascade);
/// [`StoreError::NotFound`] if there is no such plan.
pub async fn delete_plan(
    db: impl AnyExecutor<'_>,
    plan_id: Uuid,
    user_id: Uuid,
) -> Result<(), StoreError> {
    let done = sqlx::query("DELETE FROM plans WHERE id = $1 AND user_id = $2")
        .bind(plan_id.to_string())
        .bind(user_id.to_string())
        .execute(db)
        .await?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{
        self, create_step, delete_step, find_owned_step, find_step,
        testing::{another_user, database, ids_in_order, plan, step},
        update_step, StepChanges,
    };

    #[tokio::test]
    async fn another_users_plans_and_steps_are_missing_to_them() {
        let (_dir, pool, owner) = database().await;
        let other = another_user(&pool).await;
        let plan = plan(&pool, owner, &["a"]).await;
        let step_id = ids_in_order(&pool, plan.id).await[0];

        assert!(find_owned_plan(&pool, plan.id, other)
            .await
            .unwrap()
            .is_none());
        assert!(find_owned_step(&pool, step_id, other)
            .await
            .unwrap()
            .is_none());
        let steal = create_step(&pool, plan.id, other, step("x"), None).await;
        assert!(matches!(steal, Err(StoreError::NotFound)));
        let rename = StepChanges {
            title: Some("x"),
            ..StepChanges::default()
        };
        let edit = update_step(&pool, step_id, other, rename).await;
        assert!(matches!(edit, Err(StoreError::NotFound)));
        let removed = delete_step(&pool, step_id, other).await;
        assert!(matches!(removed, Err(StoreError::NotFound)));
        let removed = delete_plan(&pool, plan.id, other).await;
        assert!(matches!(removed, Err(StoreError::NotFound)));

        // The unscoped lookups the voice socket uses still see them.
        assert_eq!(
            find_plan(&pool, plan.id).await.unwrap().unwrap().user_id,
            owner
        );
        assert_eq!(
            find_step(&pool, step_id).await.unwrap().unwrap().user_id,
            owner
        );
        assert_eq!(ids_in_order(&pool, plan.id).await, [step_id]);
    }
    #[tokio::test]
    async fn deleting_a_user_deletes_their_plans_and_steps() {
        let (_dir, pool, user) = database().await;
        let plan = plan(&pool, user, &["a", "b"]).await;
        store::delete_user(&pool, user).await.unwrap();
        assert!(find_plan(&pool, plan.id).await.unwrap().is_none());
        assert!(plan_steps(&pool, plan.id).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_plan_holds_at_most_the_step_limit() {
        let (_dir, pool, user) = database().await;
        let titles = vec!["s"; MAX_STEPS_PER_PLAN];
        let full = plan(&pool, user, &titles).await;
        let more = create_step(&pool, full.id, user, step("one more"), None).await;
        assert!(matches!(more, Err(StoreError::Conflict(TOO_MANY_STEPS))));
        let over: Vec<NewStep> = vec![step("s"); MAX_STEPS_PER_PLAN + 1];
        let too_big = create_plan(
            &pool,
            NewPlan {
                user_id: user,
                title: "big",
                description: "",
                steps: &over,
            },
        )
        .await;
        assert!(matches!(too_big, Err(StoreError::Conflict(_))));
    }
}
