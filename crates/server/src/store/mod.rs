//! Persistence: users, conversations, messages, coaching profiles, plans
//! and steps, and voice turn timings in SQLite (WAL mode), through sqlx.
//! Every query lives here, in functions that take a pool or an executor;
//! migrations in `migrations/` run at start and are append-only.
//!
//! Ids are stored as hyphenated UUID text and times as Unix milliseconds, so
//! rows read well in the `sqlite3` shell and order exactly.

mod checkpoints;
mod conversations;
mod messages;
mod plans;
mod profile;
mod steps;
#[cfg(test)]
mod testing;
mod timings;
mod users;
mod writer;

use std::{str::FromStr, time::Duration};

use chrono::{DateTime, TimeZone, Utc};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

pub use checkpoints::{
    checkpointed_text, highest_possible_seq, save_checkpoint_in, ReplyCheckpoint,
};
pub use conversations::*;
pub use messages::*;
pub use plans::*;
pub use profile::*;
pub use steps::*;
pub use timings::*;
pub use users::*;
pub use writer::MessageWriter;

/// The connection pool every store function takes.
pub type Pool = SqlitePool;

/// A storage failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    #[error("{0}")]
    Conflict(&'static str),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("the message writer has stopped")]
    Unavailable,
    #[error("corrupt row: {0}")]
    Corrupt(String),
}

/// Options for [`connect`].
pub struct ConnectOptions<'a> {
    pub url: &'a str,
    /// `full` or `normal` (see the `sqlite_synchronous` setting).
    pub synchronous: &'a str,
}

/// Open (creating if needed) the database and run pending migrations.
pub async fn connect(options: ConnectOptions<'_>) -> Result<Pool, StoreError> {
    let synchronous = match options.synchronous {
        "normal" => SqliteSynchronous::Normal,
        _ => SqliteSynchronous::Full,
    };
    let connect = SqliteConnectOptions::from_str(options.url)?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(synchronous)
        .foreign_keys(true)
        .busy_timeout(Duration::from_secs(5));
    let pool = SqlitePoolOptions::new()
        .max_connections(8)
        .connect_with(connect)
        .await?;
    sqlx::migrate!("./migrations").run(&pool).await?;
    Ok(pool)
}

/// Now, as stored.
pub fn now_millis() -> i64 {
    Utc::now().timestamp_millis()
}

/// A stored time as a UTC timestamp.
pub fn from_millis(millis: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(millis)
        .single()
        .unwrap_or_else(|| DateTime::<Utc>::from(std::time::UNIX_EPOCH))
}

pub(crate) fn parse_id(text: &str) -> Result<uuid::Uuid, StoreError> {
    uuid::Uuid::parse_str(text).map_err(|_| StoreError::Corrupt(format!("bad id {text:?}")))
}

fn is_unique_violation(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(db) if db.is_unique_violation())
}

fn is_foreign_key_violation(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(db) if db.is_foreign_key_violation())
}

/// A foreign-key failure on insert means the owner (or plan) is gone.
fn not_found_if_orphan(error: sqlx::Error) -> StoreError {
    if is_foreign_key_violation(&error) {
        StoreError::NotFound
    } else {
        error.into()
    }
}
