//! Helpers for the store's unit tests: a fresh database with one user, and
//! plans made of titled steps.

use tempfile::TempDir;
use uuid::Uuid;

use super::{self as store, ConnectOptions, NewPlan, NewStep, Plan, Pool, ScratchDatabase};

/// What keeps a test database alive: its directory (SQLite) or the database
/// itself (PostgreSQL, dropped with it).
pub(crate) struct Keep {
    _dir: TempDir,
    _database: ScratchDatabase,
}

/// A fresh database of the backend `COLLOQUY_TEST_DATABASE` names (see
/// [`ScratchDatabase`]), with one user named Ada; keep the guard alive as
/// long as the pool.
pub(crate) async fn database() -> (Keep, Pool, Uuid) {
    let dir = tempfile::tempdir().unwrap();
    let database = ScratchDatabase::from_env(dir.path()).await.unwrap();
    let pool = store::connect(ConnectOptions {
        url: &database.url,
        synchronous: "normal",
        max_connections: 8,
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
    let keep = Keep {
        _dir: dir,
        _database: database,
    };
    (keep, pool, user.id)
}

/// A second (anonymous) user, to check that one user's data stays theirs.
pub(super) async fn another_user(pool: &Pool) -> Uuid {
    store::insert_user(
        pool,
        store::NewUser {
            email: None,
            password_hash: None,
            full_name: None,
            is_anonymous: true,
        },
    )
    .await
    .unwrap()
    .id
}

/// A step with this title and nothing else.
pub(super) fn step(title: &str) -> NewStep<'_> {
    NewStep {
        title,
        description: "",
        icon: "",
    }
}

/// A plan of `user_id` whose steps have these titles, in order.
pub(super) async fn plan(pool: &Pool, user_id: Uuid, titles: &[&str]) -> Plan {
    let steps: Vec<NewStep> = titles.iter().map(|t| step(t)).collect();
    store::create_plan(
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
pub(super) async fn ids_in_order(pool: &Pool, plan_id: Uuid) -> Vec<Uuid> {
    let steps = store::plan_steps(pool, plan_id).await.unwrap();
    let orders: Vec<i64> = steps.iter().map(|s| s.order).collect();
    let dense: Vec<i64> = (1..=steps.len() as i64).collect();
    assert_eq!(orders, dense, "orders are dense");
    steps.iter().map(|s| s.id).collect()
}
