//! Coaching data for seed 004: a user's profile (`full_name` and a free-form
//! `user_data` JSON object) and plans (the seed's "impacts") made of ordered
//! steps.
//!
//! Steps carry a 1-based `order` that the functions here keep dense: each
//! plan's steps are numbered 1..n with no gaps or repeats. Inserting at a
//! position shifts the later steps down, moving one shifts the steps between
//! its old and new place, and deleting one closes the gap. Each of these runs
//! in one transaction whose first statement is a write, so it holds SQLite's
//! write lock from the start (a deferred transaction that reads first cannot
//! wait for the lock and fails instead) and concurrent edits to the same plan
//! take turns rather than interleave.
//!
//! Two kinds of lookup: the CRUD functions take the caller's `user_id` and
//! treat another user's plan or step as missing, while [`find_plan`],
//! [`find_step`] and [`plan_steps`] are unscoped, for the voice socket, which
//! checks ownership itself to close with a precise reason.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use sqlx::{sqlite::SqliteRow, Acquire, Row, Sqlite, SqliteExecutor};
use uuid::Uuid;

use super::{from_millis, is_foreign_key_violation, now_millis, parse_id, StoreError};

/// Most steps one plan may hold: plans are read whole (and go into the voice
/// coach's prompt), so they stay small.
pub const MAX_STEPS_PER_PLAN: usize = 100;

/// Refusal text for a plan that would pass [`MAX_STEPS_PER_PLAN`].
pub const TOO_MANY_STEPS: &str = "a plan holds at most 100 steps";

/// What the coach knows about a user.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Profile {
    pub full_name: Option<String>,
    /// Always a JSON object.
    pub user_data: Value,
}

/// A plan (an "impact" in seed 004).
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    pub id: Uuid,
    pub user_id: Uuid,
    pub title: String,
    pub description: String,
    pub created_at: DateTime<Utc>,
    /// Changes whenever the plan or any of its steps does.
    pub updated_at: DateTime<Utc>,
}

/// One step of a plan.
#[derive(Debug, Clone, Serialize)]
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
}

/// A plan with its steps in order.
#[derive(Debug, Clone, Serialize)]
pub struct PlanWithSteps {
    #[serde(flatten)]
    pub plan: Plan,
    pub steps: Vec<Step>,
}

/// The content of a new step.
#[derive(Debug, Clone, Copy)]
pub struct NewStep<'a> {
    pub title: &'a str,
    pub description: &'a str,
    pub icon: &'a str,
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

/// Changes to a step; `None` leaves a field as it is.
#[derive(Debug, Clone, Copy, Default)]
pub struct StepChanges<'a> {
    pub title: Option<&'a str>,
    pub description: Option<&'a str>,
    pub icon: Option<&'a str>,
    /// Move the step to this 1-based position (clamped to 1..=n).
    pub order: Option<i64>,
}

fn plan_from_row(row: &SqliteRow) -> Result<Plan, StoreError> {
    Ok(Plan {
        id: parse_id(row.try_get("id")?)?,
        user_id: parse_id(row.try_get("user_id")?)?,
        title: row.try_get("title")?,
        description: row.try_get("description")?,
        created_at: from_millis(row.try_get("created_at")?),
        updated_at: from_millis(row.try_get("updated_at")?),
    })
}

fn step_from_row(row: &SqliteRow) -> Result<Step, StoreError> {
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
    })
}

fn profile_from_row(row: &SqliteRow) -> Result<Profile, StoreError> {
    let text: String = row.try_get("user_data")?;
    let user_data: Value = serde_json::from_str(&text)
        .map_err(|e| StoreError::Corrupt(format!("user_data is not JSON: {e}")))?;
    if !user_data.is_object() {
        return Err(StoreError::Corrupt("user_data is not an object".into()));
    }
    Ok(Profile {
        full_name: row.try_get("full_name")?,
        user_data,
    })
}

// ---- Profile ----

/// The profile of the user with this id, if the user exists.
pub async fn find_profile(
    db: impl SqliteExecutor<'_>,
    user_id: Uuid,
) -> Result<Option<Profile>, StoreError> {
    let row = sqlx::query("SELECT full_name, user_data FROM users WHERE id = ?")
        .bind(user_id.to_string())
        .fetch_optional(db)
        .await?;
    row.as_ref().map(profile_from_row).transpose()
}

/// Change a user's profile and return it. `None` leaves a field as it is;
/// `Some("")` clears the full name. `user_data` replaces the stored object
/// whole (so a client can remove keys) and must be a JSON object: anything
/// else is refused as a [`StoreError::Conflict`], a caller's bug since the
/// HTTP layer parses it first. A missing user is [`StoreError::NotFound`].
pub async fn update_profile(
    db: impl SqliteExecutor<'_>,
    user_id: Uuid,
    full_name: Option<&str>,
    user_data: Option<&Value>,
) -> Result<Profile, StoreError> {
    let user_data = match user_data {
        Some(value) if !value.is_object() => {
            return Err(StoreError::Conflict("user_data must be a JSON object"))
        }
        Some(value) => {
            Some(serde_json::to_string(value).map_err(|e| StoreError::Corrupt(e.to_string()))?)
        }
        None => None,
    };
    let row = sqlx::query(
        "UPDATE users SET
           full_name = CASE WHEN ? IS NULL THEN full_name ELSE NULLIF(?, '') END,
           user_data = COALESCE(?, user_data)
         WHERE id = ?
         RETURNING full_name, user_data",
    )
    .bind(full_name)
    .bind(full_name)
    .bind(user_data)
    .bind(user_id.to_string())
    .fetch_optional(db)
    .await?;
    row.as_ref()
        .map(profile_from_row)
        .transpose()?
        .ok_or(StoreError::NotFound)
}

// ---- Plans ----

/// Store a plan with its initial steps (numbered 1..n) in one transaction.
/// More than [`MAX_STEPS_PER_PLAN`] steps is a [`StoreError::Conflict`]; a
/// missing user is [`StoreError::NotFound`].
pub async fn create_plan(
    db: impl Acquire<'_, Database = Sqlite>,
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
         VALUES (?, ?, ?, ?, ?, ?)",
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
        steps.push(insert_step(&mut tx, &plan, step, order, now).await?);
    }
    tx.commit().await?;
    Ok(PlanWithSteps { plan, steps })
}

/// A user's plans, most recently updated first.
pub async fn list_plans(
    db: impl SqliteExecutor<'_>,
    user_id: Uuid,
    limit: u32,
    offset: u32,
) -> Result<Vec<Plan>, StoreError> {
    let rows = sqlx::query(
        "SELECT * FROM plans WHERE user_id = ?
         ORDER BY updated_at DESC, id DESC LIMIT ? OFFSET ?",
    )
    .bind(user_id.to_string())
    .bind(limit)
    .bind(offset)
    .fetch_all(db)
    .await?;
    rows.iter().map(plan_from_row).collect()
}

/// The plan with this id, whoever owns it (the caller checks ownership).
pub async fn find_plan(
    db: impl SqliteExecutor<'_>,
    plan_id: Uuid,
) -> Result<Option<Plan>, StoreError> {
    let row = sqlx::query("SELECT * FROM plans WHERE id = ?")
        .bind(plan_id.to_string())
        .fetch_optional(db)
        .await?;
    row.as_ref().map(plan_from_row).transpose()
}

/// The plan if it exists and belongs to `user_id`.
pub async fn find_owned_plan(
    db: impl SqliteExecutor<'_>,
    plan_id: Uuid,
    user_id: Uuid,
) -> Result<Option<Plan>, StoreError> {
    let row = sqlx::query("SELECT * FROM plans WHERE id = ? AND user_id = ?")
        .bind(plan_id.to_string())
        .bind(user_id.to_string())
        .fetch_optional(db)
        .await?;
    row.as_ref().map(plan_from_row).transpose()
}

/// The plan and its ordered steps, read in one transaction so they agree,
/// if the plan exists and belongs to `user_id`.
pub async fn find_owned_plan_with_steps(
    db: impl Acquire<'_, Database = Sqlite>,
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
    db: impl SqliteExecutor<'_>,
    plan_id: Uuid,
    user_id: Uuid,
    changes: PlanChanges<'_>,
) -> Result<Plan, StoreError> {
    let row = sqlx::query(
        "UPDATE plans SET
           title = COALESCE(?, title),
           description = COALESCE(?, description),
           updated_at = ?
         WHERE id = ? AND user_id = ?
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
    db: impl SqliteExecutor<'_>,
    plan_id: Uuid,
    user_id: Uuid,
) -> Result<(), StoreError> {
    let done = sqlx::query("DELETE FROM plans WHERE id = ? AND user_id = ?")
        .bind(plan_id.to_string())
        .bind(user_id.to_string())
        .execute(db)
        .await?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

// ---- Steps ----

/// The steps of a plan in order, whoever owns it (empty for no such plan).
pub async fn plan_steps(
    db: impl SqliteExecutor<'_>,
    plan_id: Uuid,
) -> Result<Vec<Step>, StoreError> {
    let rows = sqlx::query(r#"SELECT * FROM plan_steps WHERE plan_id = ? ORDER BY "order", id"#)
        .bind(plan_id.to_string())
        .fetch_all(db)
        .await?;
    rows.iter().map(step_from_row).collect()
}

/// The step with this id, whoever owns it (the caller checks ownership).
pub async fn find_step(
    db: impl SqliteExecutor<'_>,
    step_id: Uuid,
) -> Result<Option<Step>, StoreError> {
    let row = sqlx::query("SELECT * FROM plan_steps WHERE id = ?")
        .bind(step_id.to_string())
        .fetch_optional(db)
        .await?;
    row.as_ref().map(step_from_row).transpose()
}

/// The step if it exists and belongs to `user_id`.
pub async fn find_owned_step(
    db: impl SqliteExecutor<'_>,
    step_id: Uuid,
    user_id: Uuid,
) -> Result<Option<Step>, StoreError> {
    let row = sqlx::query("SELECT * FROM plan_steps WHERE id = ? AND user_id = ?")
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
    db: impl Acquire<'_, Database = Sqlite>,
    plan_id: Uuid,
    user_id: Uuid,
    new: NewStep<'_>,
    order: Option<i64>,
) -> Result<Step, StoreError> {
    let now = now_millis();
    let mut tx = db.begin().await?;
    // Writing first takes the write lock for the whole transaction (see the
    // module doc) and checks ownership in the same statement.
    let row =
        sqlx::query("UPDATE plans SET updated_at = ? WHERE id = ? AND user_id = ? RETURNING *")
            .bind(now)
            .bind(plan_id.to_string())
            .bind(user_id.to_string())
            .fetch_optional(&mut *tx)
            .await?;
    let plan = row
        .as_ref()
        .map(plan_from_row)
        .transpose()?
        .ok_or(StoreError::NotFound)?;
    let count = step_count(&mut tx, plan_id).await?;
    if count >= MAX_STEPS_PER_PLAN as i64 {
        return Err(StoreError::Conflict(TOO_MANY_STEPS));
    }
    let order = order.map_or(count + 1, |order| order.clamp(1, count + 1));
    sqlx::query(
        r#"UPDATE plan_steps SET "order" = "order" + 1, updated_at = ?
           WHERE plan_id = ? AND "order" >= ?"#,
    )
    .bind(now)
    .bind(plan_id.to_string())
    .bind(order)
    .execute(&mut *tx)
    .await?;
    let step = insert_step(&mut tx, &plan, &new, order, now).await?;
    tx.commit().await?;
    Ok(step)
}

/// Change a step owned by `user_id` and return it. Moving it to `order`
/// (clamped to 1..=n) shifts the steps between its old and new position by
/// one. [`StoreError::NotFound`] if there is no such step.
pub async fn update_step(
    db: impl Acquire<'_, Database = Sqlite>,
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
    // The write that comes first (see the module doc) also reads the step's
    // place and checks ownership.
    let row = sqlx::query(
        r#"UPDATE plan_steps SET
             title = COALESCE(?, title),
             description = COALESCE(?, description),
             icon = COALESCE(?, icon),
             updated_at = ?
           WHERE id = ? AND user_id = ?
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
                r#"UPDATE plan_steps SET "order" = "order" + ?, updated_at = ?
                   WHERE plan_id = ? AND "order" BETWEEN ? AND ?"#,
            )
            .bind(shift)
            .bind(now)
            .bind(plan_id.to_string())
            .bind(low)
            .bind(high)
            .execute(&mut *tx)
            .await?;
            sqlx::query(r#"UPDATE plan_steps SET "order" = ? WHERE id = ?"#)
                .bind(new)
                .bind(step_id.to_string())
                .execute(&mut *tx)
                .await?;
        }
    }
    touch_plan(&mut tx, plan_id, now).await?;
    let step = find_step(&mut *tx, step_id)
        .await?
        .ok_or(StoreError::NotFound)?;
    tx.commit().await?;
    Ok(step)
}

/// Delete a step owned by `user_id`; the later steps move up one.
/// [`StoreError::NotFound`] if there is no such step.
pub async fn delete_step(
    db: impl Acquire<'_, Database = Sqlite>,
    step_id: Uuid,
    user_id: Uuid,
) -> Result<(), StoreError> {
    let now = now_millis();
    let mut tx = db.begin().await?;
    let row = sqlx::query(
        r#"DELETE FROM plan_steps WHERE id = ? AND user_id = ? RETURNING plan_id, "order""#,
    )
    .bind(step_id.to_string())
    .bind(user_id.to_string())
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(StoreError::NotFound)?;
    let plan_id = parse_id(row.try_get("plan_id")?)?;
    let order: i64 = row.try_get("order")?;
    sqlx::query(
        r#"UPDATE plan_steps SET "order" = "order" - 1, updated_at = ?
           WHERE plan_id = ? AND "order" > ?"#,
    )
    .bind(now)
    .bind(plan_id.to_string())
    .bind(order)
    .execute(&mut *tx)
    .await?;
    touch_plan(&mut tx, plan_id, now).await?;
    tx.commit().await?;
    Ok(())
}

async fn step_count(conn: &mut sqlx::SqliteConnection, plan_id: Uuid) -> Result<i64, StoreError> {
    let (count,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM plan_steps WHERE plan_id = ?")
        .bind(plan_id.to_string())
        .fetch_one(conn)
        .await?;
    Ok(count)
}

/// A change to a step is a change to its plan (lists show recent activity first).
async fn touch_plan(
    conn: &mut sqlx::SqliteConnection,
    plan_id: Uuid,
    now: i64,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE plans SET updated_at = ? WHERE id = ?")
        .bind(now)
        .bind(plan_id.to_string())
        .execute(conn)
        .await?;
    Ok(())
}

async fn insert_step(
    conn: &mut sqlx::SqliteConnection,
    plan: &Plan,
    new: &NewStep<'_>,
    order: i64,
    now: i64,
) -> Result<Step, StoreError> {
    let step = Step {
        id: Uuid::now_v7(),
        plan_id: plan.id,
        user_id: plan.user_id,
        order,
        title: new.title.to_owned(),
        description: new.description.to_owned(),
        icon: new.icon.to_owned(),
        created_at: from_millis(now),
        updated_at: from_millis(now),
    };
    sqlx::query(
        r#"INSERT INTO plan_steps
             (id, plan_id, user_id, "order", title, description, icon, created_at, updated_at)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"#,
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

/// A foreign-key failure on insert means the owner (or plan) is gone.
fn not_found_if_orphan(error: sqlx::Error) -> StoreError {
    if is_foreign_key_violation(&error) {
        StoreError::NotFound
    } else {
        error.into()
    }
}

#[cfg(test)]
mod tests {
    use rand::{rngs::StdRng, Rng, SeedableRng};
    use serde_json::json;
    use tempfile::TempDir;

    use super::*;
    use crate::store::{self, ConnectOptions, Pool};

    async fn database() -> (TempDir, Pool, Uuid) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("t.db").display());
        let pool = store::connect(ConnectOptions {
            url: &url,
            synchronous: "normal",
        })
        .await
        .unwrap();
        let user = store::insert_user(
            &pool,
            store::NewUser {
                email: None,
                password_hash: None,
                full_name: Some("Ada"),
                is_anonymous: true,
            },
        )
        .await
        .unwrap();
        (dir, pool, user.id)
    }

    fn step(title: &str) -> NewStep<'_> {
        NewStep {
            title,
            description: "",
            icon: "",
        }
    }

    async fn plan(pool: &Pool, user_id: Uuid, titles: &[&str]) -> Plan {
        let steps: Vec<NewStep> = titles.iter().map(|t| step(t)).collect();
        create_plan(
            pool,
            NewPlan {
                user_id,
                title: "plan",
                description: "",
                steps: &steps,
            },
        )
        .await
        .unwrap()
        .plan
    }

    /// The step ids in order, after checking the orders are exactly 1..n.
    async fn ids_in_order(pool: &Pool, plan_id: Uuid) -> Vec<Uuid> {
        let steps = plan_steps(pool, plan_id).await.unwrap();
        let orders: Vec<i64> = steps.iter().map(|s| s.order).collect();
        let dense: Vec<i64> = (1..=steps.len() as i64).collect();
        assert_eq!(orders, dense, "orders are dense");
        steps.iter().map(|s| s.id).collect()
    }

    #[test]
    fn the_refusal_names_the_limit() {
        assert!(TOO_MANY_STEPS.contains(&MAX_STEPS_PER_PLAN.to_string()));
    }

    #[tokio::test]
    async fn a_profile_starts_empty_and_updates_field_by_field() {
        let (_dir, pool, user) = database().await;
        let profile = find_profile(&pool, user).await.unwrap().unwrap();
        assert_eq!(profile.full_name.as_deref(), Some("Ada"));
        assert_eq!(profile.user_data, json!({}));

        let data = json!({ "goals": ["run 5k"] });
        let profile = update_profile(&pool, user, None, Some(&data))
            .await
            .unwrap();
        assert_eq!(profile.full_name.as_deref(), Some("Ada"), "name kept");
        assert_eq!(profile.user_data, data);

        let profile = update_profile(&pool, user, Some(""), None).await.unwrap();
        assert_eq!(profile.full_name, None, "an empty name clears it");
        assert_eq!(profile.user_data, data, "data kept");

        assert!(matches!(
            update_profile(&pool, user, None, Some(&json!([1]))).await,
            Err(StoreError::Conflict(_))
        ));
        let nobody = Uuid::now_v7();
        assert!(find_profile(&pool, nobody).await.unwrap().is_none());
        assert!(matches!(
            update_profile(&pool, nobody, Some("x"), None).await,
            Err(StoreError::NotFound)
        ));
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
    async fn another_users_plans_and_steps_are_missing_to_them() {
        let (_dir, pool, owner) = database().await;
        let other = store::insert_user(
            &pool,
            store::NewUser {
                email: None,
                password_hash: None,
                full_name: None,
                is_anonymous: true,
            },
        )
        .await
        .unwrap()
        .id;
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
    async fn a_steps_owner_must_be_its_plans_owner() {
        let (_dir, pool, owner) = database().await;
        let plan = plan(&pool, owner, &[]).await;
        let other = Uuid::now_v7();
        let forged = sqlx::query(
            r#"INSERT INTO plan_steps
                 (id, plan_id, user_id, "order", title, created_at, updated_at)
               VALUES (?, ?, ?, 1, 't', 0, 0)"#,
        )
        .bind(Uuid::now_v7().to_string())
        .bind(plan.id.to_string())
        .bind(other.to_string())
        .execute(&pool)
        .await;
        assert!(forged.is_err(), "the composite foreign key refuses it");
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
