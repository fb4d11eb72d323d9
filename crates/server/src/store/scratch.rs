//! Throwaway databases for tests and benchmarks. Each one is new, so runs
//! in parallel never see each other's rows: a SQLite file in a directory
//! the caller owns, or a PostgreSQL database created on the server and
//! dropped again when the [`ScratchDatabase`] is dropped.
//!
//! `COLLOQUY_TEST_DATABASE` picks the backend (`sqlite`, the default, or
//! `postgres`); `COLLOQUY_TEST_POSTGRES_URL` names the server to create
//! databases on (default: the local one, user `postgres`).

use std::{path::Path, str::FromStr};

use sqlx::{
    postgres::{PgConnectOptions, PgConnection},
    ConnectOptions as _, Connection as _, Executor as _,
};

use super::{Backend, StoreError};

/// The server scratch PostgreSQL databases are made on, by default.
pub const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// A database that exists only as long as this value.
#[derive(Debug)]
pub struct ScratchDatabase {
    /// Where to connect (give it to `DATABASE_URL`).
    pub url: String,
    /// PostgreSQL only: the server and the database to drop at the end.
    postgres: Option<(PgConnectOptions, String)>,
}

impl ScratchDatabase {
    /// The backend the environment asks for (see the module doc); a SQLite
    /// database lives in `dir`.
    pub async fn from_env(dir: &Path) -> Result<Self, StoreError> {
        match Self::backend_from_env()? {
            Backend::Sqlite => Ok(Self::sqlite(dir)),
            Backend::Postgres => {
                let server = std::env::var("COLLOQUY_TEST_POSTGRES_URL")
                    .unwrap_or_else(|_| DEFAULT_POSTGRES_URL.to_owned());
                Self::postgres(&server).await
            }
        }
    }

    /// The backend `COLLOQUY_TEST_DATABASE` names.
    pub fn backend_from_env() -> Result<Backend, StoreError> {
        match std::env::var("COLLOQUY_TEST_DATABASE").as_deref() {
            Err(_) | Ok("") | Ok("sqlite") => Ok(Backend::Sqlite),
            Ok("postgres") | Ok("postgresql") => Ok(Backend::Postgres),
            Ok(_) => Err(StoreError::Unsupported(
                "COLLOQUY_TEST_DATABASE must be sqlite or postgres",
            )),
        }
    }

    /// A SQLite file in `dir` (created on first connect).
    pub fn sqlite(dir: &Path) -> Self {
        Self {
            url: format!("sqlite://{}", dir.join("colloquy.db").display()),
            postgres: None,
        }
    }

    /// A new, empty database on the PostgreSQL server at `server_url`.
    pub async fn postgres(server_url: &str) -> Result<Self, StoreError> {
        let server = PgConnectOptions::from_str(server_url)?;
        let name = format!("colloquy_test_{}", uuid::Uuid::new_v4().simple());
        let mut admin = server.connect().await?;
        admin
            .execute(format!(r#"CREATE DATABASE "{name}""#).as_str())
            .await?;
        admin.close().await?;
        let url = server.clone().database(&name).to_url_lossy().to_string();
        Ok(Self {
            url,
            postgres: Some((server, name)),
        })
    }
}

impl Drop for ScratchDatabase {
    fn drop(&mut self) {
        let Some((server, name)) = self.postgres.take() else {
            return;
        };
        // Drop runs inside the caller's runtime, which cannot be blocked on:
        // drop the database from a thread with a runtime of its own.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(async move {
                let mut admin: PgConnection = server.connect().await?;
                admin
                    .execute(format!(r#"DROP DATABASE IF EXISTS "{name}" WITH (FORCE)"#).as_str())
                    .await?;
                admin.close().await?;
                Ok::<_, anyhow::Error>(())
            })
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            tracing::warn!("could not drop a scratch database");
        }
    }
}
