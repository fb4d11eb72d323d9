//! Persistence: users, conversations, messages, coaching profiles, plans
//! and steps, turn timings and conversation summaries, in SQLite (WAL
//! mode, the embedded default) or PostgreSQL (several nodes), through sqlx. Every query lives
//! here, in functions that take a pool or an executor; migrations in
//! `migrations/<backend>/` run at start and are append-only.
//!
//! One set of queries serves both backends through sqlx's `Any` driver: the
//! schema stores ids as hyphenated UUID text, times as Unix milliseconds and
//! flags as 0/1 integers, the types every backend shares, so nothing needs
//! the uuid/time/json types `Any` lacks. The SQL is the common subset of
//! both dialects (`$n` parameters, `CASE` instead of SQLite's two-argument
//! `MAX`, aliased subqueries), and the unit tests run on both.

mod analytics;
mod branches;
mod checkpoints;
mod conversations;
mod identities;
mod messages;
mod plans;
mod profile;
mod progress;
pub mod scratch;
mod search;
mod shares;
mod steps;
mod streaks;
mod stripe;
mod summaries;
#[cfg(test)]
pub(crate) mod testing;
mod timings;
mod tool_calls;
mod usage;
mod user_plans;
mod users;
mod writer;

use std::{str::FromStr, time::Duration};

use chrono::{DateTime, TimeZone, Utc};
use sqlx::{
    any::AnyPoolOptions,
    sqlite::{SqliteConnectOptions, SqliteJournalMode},
    ConnectOptions as _, Connection as _, Executor as _,
};

pub use analytics::*;
pub use branches::*;
pub use checkpoints::{
    checkpointed_text, highest_possible_seq, numbering, save_checkpoint_in, Numbering,
    ReplyCheckpoint,
};
pub use conversations::*;
pub use identities::*;
pub use messages::*;
pub use plans::*;
pub use profile::*;
pub use progress::*;
pub use scratch::ScratchDatabase;
pub use search::*;
pub use shares::*;
pub use steps::*;
pub use streaks::*;
pub use stripe::*;
pub use summaries::*;
pub use timings::*;
pub use tool_calls::*;
pub use usage::*;
pub use user_plans::*;
pub use users::*;
pub use writer::MessageWriter;

/// The connection pool every store function takes.
pub type Pool = sqlx::AnyPool;

/// Which database a URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    /// The backend of `url`, by its scheme.
    pub fn of_url(url: &str) -> Option<Self> {
        let scheme = url.split(':').next().unwrap_or_default();
        match scheme {
            "sqlite" => Some(Self::Sqlite),
            "postgres" | "postgresql" => Some(Self::Postgres),
            _ => None,
        }
    }
}

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
    #[error("{0}")]
    Unsupported(&'static str),
}

/// Options for [`connect`].
pub struct ConnectOptions<'a> {
    pub url: &'a str,
    /// SQLite only: `full` or `normal` (see the `sqlite_synchronous` setting).
    pub synchronous: &'a str,
    /// Most connections the pool opens.
    pub max_connections: u32,
}

/// Open the database (creating a SQLite file if needed) and run pending
/// migrations.
pub async fn connect(options: ConnectOptions<'_>) -> Result<Pool, StoreError> {
    sqlx::any::install_default_drivers();
    let backend = Backend::of_url(options.url).ok_or_else(|| {
        StoreError::Unsupported(
            "the database URL must start with sqlite:, postgres: or postgresql:",
        )
    })?;
    let pool_options = AnyPoolOptions::new()
        .max_connections(options.max_connections)
        .acquire_timeout(Duration::from_secs(10));
    let pool = match backend {
        Backend::Sqlite => {
            let synchronous = match options.synchronous {
                "normal" => "NORMAL",
                _ => "FULL",
            };
            prepare_sqlite(options.url).await?;
            // `synchronous` is per connection; WAL mode, set once above, is
            // kept in the file. Foreign keys and the busy timeout are sqlx's
            // SQLite defaults for every connection.
            pool_options
                .after_connect(move |conn, _| {
                    Box::pin(async move {
                        conn.execute(format!("PRAGMA synchronous = {synchronous}").as_str())
                            .await?;
                        Ok(())
                    })
                })
                .connect(options.url)
                .await?
        }
        Backend::Postgres => pool_options.connect(options.url).await?,
    };
    match backend {
        Backend::Sqlite => sqlx::migrate!("./migrations/sqlite").run(&pool).await?,
        Backend::Postgres => sqlx::migrate!("./migrations/postgres").run(&pool).await?,
    }
    Ok(pool)
}

/// Create the SQLite file if missing and switch it to WAL mode (a setting
/// the file keeps), through a native connection: the `Any` pool can only be
/// configured by URL.
async fn prepare_sqlite(url: &str) -> Result<(), StoreError> {
    let conn = SqliteConnectOptions::from_str(url)?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .busy_timeout(Duration::from_secs(5))
        .connect()
        .await?;
    conn.close().await?;
    Ok(())
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
