//! The steps of a plan (seed 004), each with a 1-based `order`.
//!
//! The functions here keep those orders dense: each plan's steps are
//! numbered 1..n with no gaps or repeats. Inserting at a position shifts the
//! later steps down, moving one shifts the steps between its old and new
//! place, and deleting one closes the gap. Each of these runs in one
//! transaction whose first statement writes the plan's row: on SQLite that
//! takes the write lock from the start (a deferred transaction that reads
//! first cannot wait for the lock and fails instead), on PostgreSQL it locks
//! the plan's row, so concurrent edits to the same plan take turns rather
//! than interleave on either backend. A change to a step is a change to its plan:
//! the plan's `updated_at` moves with it.
//!
//! Two kinds of lookup: the CRUD functions take the caller's `user_id` and
//! treat another user's step as missing, while [`find_step`] and
//! [`plan_steps`] are unscoped, for the voice socket, which checks ownership
//! itself to close with a precise reason.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{
    any::{AnyExecutor, AnyRow},
    Acquire, Any, Row,
};
use uuid::Uuid;

use super::{from_millis, not_found_if_orphan, now_millis, parse_id, StoreError};

/// Most steps one plan may hold: plans are read whole (and go into the voice
/// coach's prompt), so they stay small.
pub const MAX_STEPS_PER_PLAN: usize = 100;

/// Refusal text for a plan that would pass [`MAX_STEPS_PER_PLAN`].
pub const TOO_MANY_STEPS: &str = "a plan holds at most 100 steps";

/// One step of a plan.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Step {
    pub id: Uuid,
    pub plan_id: Uuid,
    /// The owner, the same as the plan's.
    pub user_id: Uuid,
    /// 1-based position in the plan; a plan's steps are numbered 1..n.
    pub order: i64,
    pub title: String,
    pub description: String,
    /// An emoji or icon name; may be empty.
    pub icon: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// When the user completed it (the coach's `complete_step` tool);
    /// `null` while it is still to do.
    pub completed_at: Option<DateTime<Utc>>,
}

/// The content of a new step.
#[derive(Debug, Clone, Copy)]
pub struct NewStep<'a> {
    pub title: &'a str,
    pub description: &'a str,
    pub icon: &'a str,
}

/// Changes to a step; `None` leaves a field as it is.
#[derive(Debug, Clone, Copy, Default)]
pub struct StepChanges<'a> {
    pub title: Option<&'a str>,
    pub description: Option<&'a str>,
    pub icon: Option<&'a str>,
    /// Move the step to this 1-based position (clamped to 1..=n).
    pub order: Option<i64>,
}

fn step_from_row(row: &AnyRow) -> Result<Step, StoreError> {
    Ok(Step {
        id: parse_id(row.try_get("id")?)?,
        plan_id: parse_id(row.try_get("plan_id")?)?,
        user_id: parse_id(row.try_get("user_id")?)?,
        order: row.try_get("order")?,
        title: row.try_get("title")?,
        description: row.try_get("description")?,
        icon: row.try_get("icon")?,
        created_at: from_millis(row.try_get("created_at")?),
        updated_at: from_millis(row.try_get("updated_at")?),
        completed_at: row
            .try_get::<Option<i64>, _>("completed_at")?
            .map(from_millis),
    })
}

/// The steps of a plan in order, whoever owns it (empty for no such plan).
pub async fn plan_steps(db: impl AnyExecutor<'_>, plan_id: Uuid) -> Result<Vec<Step>, StoreError> {
    let rows = sqlx::query(r#"SELECT * FROM plan_steps WHERE plan_id = $1 ORDER BY "order", id"#)
        .bind(plan_id.to_string())
        .fetch_all(db)
        .await?;
    rows.iter().map(step_from_row).collect()
}

/// The step with this id, whoever owns it (the caller checks ownership).
pub async fn find_step(
    db: impl AnyExecutor<'_>,
    step_id: Uuid,
) -> Result<Option<Step>, StoreError> {
    let row = sqlx::query("SELECT * FROM plan_steps WHERE id = $1")
        .bind(step_id.to_string())
        .fetch_optional(db)
        .await?;
    row.as_ref().map(step_from_row).transpose()
}

/// The step if it exists and belongs to `user_id`.
pub async fn find_owned_step(
    db: impl AnyExecutor<'_>,
    step_id: Uuid,
    user_id: Uuid,
) -> Result<Option<Step>, StoreError> {
    let row = sqlx::query("SELECT * FROM plan_steps WHERE id = $1 AND user_id = $2")
        .bind(step_id.to_string())
        .bind(user_id.to_string())
        .fetch_optional(db)
        .await?;
    row.as_ref().map(step_from_row).transpose()
}

/// Add a step to a plan owned by `user_id`: at the 1-based position `order`
/// (clamped to 1..=n+1; the steps from there on move down one), or at the
/// end when `None`. [`StoreError::NotFound`] if there is no such plan,
/// [`StoreError::Conflict`] if it already holds [`MAX_STEPS_PER_PLAN`] steps.
pub async fn create_step(
    db: impl Acquire<'_, Database = Any>,
    plan_id: Uuid,
    user_id: Uuid,
    new: NewStep<'_>,
    order: Option<i64>,
) -> Result<Step, StoreError> {
    let now = now_millis();
    let mut tx = db.begin().await?;
    // Writing first takes the write lock for the whole transaction (see the
    // module doc) and checks ownership in the same statement.
    let touched = sqlx::query("UPDATE plans SET updated_at = $1 WHERE id = $2 AND user_id = $3")
        .bind(now)
        .bind(plan_id.to_string())
        .bind(user_id.to_string())
        .execute(&mut *tx)
        .await?;
    if touched.rows_affected() == 0 {
        return Err(StoreError::NotFound);
    }
    let count = step_count(&mut tx, plan_id).await?;
    if count >= MAX_STEPS_PER_PLAN as i64 {
        return Err(StoreError::Conflict(TOO_MANY_STEPS));
    }
    let order = order.map_or(count + 1, |order| order.clamp(1, count + 1));
    sqlx::query(
        r#"UPDATE plan_steps SET "order" = "order" + 1, updated_at = $1
           WHERE plan_id = $2 AND "order" >= $3"#,
    )
    .bind(now)
    .bind(plan_id.to_string())
    .bind(order)
    .execute(&mut *tx)
    .await?;
    let place = Placement {
        plan_id,
        user_id,
        order,
        now,
    };
    let step = insert_step(&mut tx, place, &new).await?;
    tx.commit().await?;
    Ok(step)
}

/// Change a step owned by `user_id` and return it. Moving it to `order`
/// (clamped to 1..=n) shifts the steps between its old and new position by
/// one. [`StoreError::NotFound`] if there is no such step.
pub async fn update_step(
    db: impl Acquire<'_, Database = Any>,
    step_id: Uuid,
    user_id: Uuid,
    changes: StepChanges<'_>,
) -> Result<Step, StoreError> {
    let mut tx = db.begin().await?;
    let nothing_to_do = changes.title.is_none()
        && changes.description.is_none()
        && changes.icon.is_none()
        && changes.order.is_none();
    if nothing_to_do {
        // An empty change leaves the timestamps alone too.
        let step = find_owned_step(&mut *tx, step_id, user_id).await?;
        return step.ok_or(StoreError::NotFound);
    }
    let now = now_millis();
    lock_plan_of_step(&mut tx, step_id, user_id, now).await?;
    let row = sqlx::query(
        r#"UPDATE plan_steps SET
             title = COALESCE($1, title),
             description = COALESCE($2, description),
             icon = COALESCE($3, icon),
             updated_at = $4
           WHERE id = $5 AND user_id = $6
           RETURNING plan_id, "order""#,
    )
    .bind(changes.title)
    .bind(changes.description)
    .bind(changes.icon)
    .bind(now)
    .bind(step_id.to_string())
    .bind(user_id.to_string())
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(StoreError::NotFound)?;
    let plan_id = parse_id(row.try_get("plan_id")?)?;
    let old: i64 = row.try_get("order")?;
    if let Some(target) = changes.order {
        let count = step_count(&mut tx, plan_id).await?;
        // The step itself is counted, so count >= 1 and the clamp is sound.
        let new = target.clamp(1, count.max(1));
        if new != old {
            // Shift the steps between the two places one toward the old
            // place, then put the step in the place that frees up.
            let (shift, low, high) = if new < old {
                (1, new, old - 1)
            } else {
                (-1, old + 1, new)
            };
            sqlx::query(
                r#"UPDATE plan_steps SET "order" = "order" + $1, updated_at = $2
                   WHERE plan_id = $3 AND "order" BETWEEN $4 AND $5"#,
            )
            .bind(shift)
            .bind(now)
            .bind(plan_id.to_string())
            .bind(low)
            .bind(high)
            .execute(&mut *tx)
            .await?;
            sqlx::query(r#"UPDATE plan_steps SET "order" = $1 WHERE id = $2"#)
                .bind(new)
                .bind(step_id.to_string())
                .execute(&mut *tx)
                .await?;
        }
    }
    let step = find_step(&mut *tx, step_id)
        .await?
        .ok_or(StoreError::NotFound)?;
    tx.commit().await?;
    Ok(step)
}

/// Delete a step owned by `user_id`; the later steps move up one.
/// [`StoreError::NotFound`] if there is no such step.
pub async fn delete_step(
    db: impl Acquire<'_, Database = Any>,
    step_id: Uuid,
    user_id: Uuid,
) -> Result<(), StoreError> {
    let now = now_millis();
    let mut tx = db.begin().await?;
    lock_plan_of_step(&mut tx, step_id, user_id, now).await?;
    let row = sqlx::query(
        r#"DELETE FROM plan_steps WHERE id = $1 AND user_id = $2 RETURNING plan_id, "order""#,
    )
    .bind(step_id.to_string())
    .bind(user_id.to_string())
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(StoreError::NotFound)?;
    let plan_id = parse_id(row.try_get("plan_id")?)?;
    let order: i64 = row.try_get("order")?;
    sqlx::query(
        r#"UPDATE plan_steps SET "order" = "order" - 1, updated_at = $1
           WHERE plan_id = $2 AND "order" > $3"#,
    )
    .bind(now)
    .bind(plan_id.to_string())
    .bind(order)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

/// The first write of a step edit (see the module doc): touches the plan of
/// a step owned by `user_id` (a change to a step is a change to its plan),
/// or [`StoreError::NotFound`].
pub(super) async fn lock_plan_of_step(
    conn: &mut sqlx::AnyConnection,
    step_id: Uuid,
    user_id: Uuid,
    now: i64,
) -> Result<(), StoreError> {
    let touched = sqlx::query(
        "UPDATE plans SET updated_at = $1
         WHERE id = (SELECT plan_id FROM plan_steps WHERE id = $2 AND user_id = $3)",
    )
    .bind(now)
    .bind(step_id.to_string())
    .bind(user_id.to_string())
    .execute(conn)
    .await?;
    if touched.rows_affected() == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

async fn step_count(conn: &mut sqlx::AnyConnection, plan_id: Uuid) -> Result<i64, StoreError> {
    let (count,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM plan_steps WHERE plan_id = $1")
        .bind(plan_id.to_string())
        .fetch_one(conn)
        .await?;
    Ok(count)
}

/// Where a new step goes: its plan (and the plan's owner), its place and
/// the time of the change.
#[derive(Debug, Clone, Copy)]
pub(super) struct Placement {
    pub plan_id: Uuid,
    pub user_id: Uuid,
    pub order: i64,
    pub now: i64,
}

/// Insert one step at `place`, whose order the caller has freed. A missing
/// plan (or owner) is [`StoreError::NotFound`].
pub(super) async fn insert_step(
    conn: &mut sqlx::AnyConnection,
    place: Placement,
    new: &NewStep<'_>,
) -> Result<Step, StoreError> {
    let Placement {
        plan_id,
        user_id,
        order,
        now,
    } = place;
    let step = Step {
        id: Uuid::now_v7(),
        plan_id,
        user_id,
        order,
        title: new.title.to_owned(),
        description: new.description.to_owned(),
        icon: new.icon.to_owned(),
        created_at: from_millis(now),
        updated_at: from_millis(now),
        completed_at: None,
    };
    sqlx::query(
        r#"INSERT INTO plan_steps
             (id, plan_id, user_id, "order", title, description, icon, created_at, updated_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"#,
    )
    .bind(step.id.to_string())
    .bind(step.plan_id.to_string())
    .bind(step.user_id.to_string())
    .bind(order)
    .bind(&step.title)
    .bind(&step.description)
    .bind(&step.icon)
    .bind(now)
    .bind(now)
    .execute(conn)
    .await
    .map_err(not_found_if_orphan)?;
    Ok(step)
}

#[cfg(test)]
mod tests {
    use rand::{rngs::StdRng, Rng, SeedableRng};

    use super::*;
    use crate::store::testing::{database, ids_in_order, plan, step};

    #[test]
    fn the_refusal_names_the_limit() {
        assert!(TOO_MANY_STEPS.contains(&MAX_STEPS_PER_PLAN.to_string()));
    }

    #[tokio::test]
    async fn random_inserts_moves_and_deletes_keep_orders_dense() {
        let (_dir, pool, user) = database().await;
        let plan = plan(&pool, user, &["a", "b", "c"]).await;
        let mut model = ids_in_order(&pool, plan.id).await;
        let mut rng = StdRng::seed_from_u64(4);
        for _ in 0..200 {
            let len = model.len() as i64;
            match rng.gen_range(0..3) {
                0 if model.len() < 12 => {
                    // Positions past either end are clamped.
                    let at = rng.gen_range(-1..=len + 3);
                    let order = (at != -1).then_some(at);
                    let created = create_step(&pool, plan.id, user, step("s"), order)
                        .await
                        .unwrap();
                    let index = order.map_or(len + 1, |o| o.clamp(1, len + 1)) as usize - 1;
                    assert_eq!(created.order, index as i64 + 1);
                    model.insert(index, created.id);
                }
                1 if !model.is_empty() => {
                    let from = rng.gen_range(0..model.len());
                    let to = rng.gen_range(-1..=len + 2);
                    let changes = StepChanges {
                        order: Some(to),
                        ..StepChanges::default()
                    };
                    let moved = update_step(&pool, model[from], user, changes)
                        .await
                        .unwrap();
                    let id = model.remove(from);
                    let index = to.clamp(1, len) as usize - 1;
                    model.insert(index, id);
                    assert_eq!(moved.order, index as i64 + 1);
                }
                2 if !model.is_empty() => {
                    let index = rng.gen_range(0..model.len());
                    delete_step(&pool, model.remove(index), user).await.unwrap();
                }
                _ => continue,
            }
            assert_eq!(ids_in_order(&pool, plan.id).await, model);
        }
    }

    #[tokio::test]
    async fn concurrent_inserts_into_one_plan_take_turns() {
        let (_dir, pool, user) = database().await;
        let plan_id = plan(&pool, user, &[]).await.id;
        // Concurrent writers to one plan: each waits for the write lock (the
        // busy timeout) instead of failing on a stale read snapshot, and
        // their shifts never interleave.
        let inserts = (0..16).map(|_| {
            let pool = pool.clone();
            tokio::spawn(async move { create_step(&pool, plan_id, user, step("s"), Some(1)).await })
        });
        for insert in futures::future::join_all(inserts).await {
            insert.unwrap().unwrap();
        }
        assert_eq!(ids_in_order(&pool, plan_id).await.len(), 16);
    }

    #[tokio::test]
    async fn a_steps_owner_must_be_its_plans_owner() {
        let (_dir, pool, owner) = database().await;
        let plan = plan(&pool, owner, &[]).await;
        let other = Uuid::now_v7();
        let forged = sqlx::query(
            r#"INSERT INTO plan_steps
                 (id, plan_id, user_id, "order", title, created_at, updated_at)
               VALUES ($1, $2, $3, 1, 't', 0, 0)"#,
        )
        .bind(Uuid::now_v7().to_string())
        .bind(plan.id.to_string())
        .bind(other.to_string())
        .execute(&pool)
        .await;
        assert!(forged.is_err(), "the composite foreign key refuses it");
    }
}
