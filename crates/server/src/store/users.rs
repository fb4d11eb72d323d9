//! Users: registered (email + password hash) and anonymous.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{
    any::{AnyExecutor, AnyRow},
    Row,
};
use uuid::Uuid;

use super::{from_millis, is_unique_violation, now_millis, parse_id, StoreError};

/// A user as the API shows it (never the password hash).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct User {
    pub id: Uuid,
    pub email: Option<String>,
    pub full_name: Option<String>,
    pub is_anonymous: bool,
    pub created_at: DateTime<Utc>,
}

/// A user row with its password hash, for login.
pub struct Credentials {
    pub user: User,
    pub password_hash: Option<String>,
}

/// What [`insert_user`] stores.
pub struct NewUser<'a> {
    pub email: Option<&'a str>,
    pub password_hash: Option<&'a str>,
    pub full_name: Option<&'a str>,
    pub is_anonymous: bool,
}

pub(super) fn user_from_row(row: &AnyRow) -> Result<User, StoreError> {
    Ok(User {
        id: parse_id(row.try_get("id")?)?,
        email: row.try_get("email")?,
        full_name: row.try_get("full_name")?,
        is_anonymous: row.try_get::<i64, _>("is_anonymous")? != 0,
        created_at: from_millis(row.try_get("created_at")?),
    })
}

/// Store a new user; a taken email is a [`StoreError::Conflict`].
pub async fn insert_user(db: impl AnyExecutor<'_>, new: NewUser<'_>) -> Result<User, StoreError> {
    let id = Uuid::now_v7();
    let created_at = now_millis();
    sqlx::query(
        "INSERT INTO users (id, email, password_hash, full_name, is_anonymous, created_at)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(id.to_string())
    .bind(new.email)
    .bind(new.password_hash)
    .bind(new.full_name)
    .bind(i64::from(new.is_anonymous))
    .bind(created_at)
    .execute(db)
    .await
    .map_err(|e| {
        if is_unique_violation(&e) {
            StoreError::Conflict("an account with this email already exists")
        } else {
            e.into()
        }
    })?;
    Ok(User {
        id,
        email: new.email.map(str::to_owned),
        full_name: new.full_name.map(str::to_owned),
        is_anonymous: new.is_anonymous,
        created_at: from_millis(created_at),
    })
}

/// The user with this id, if any.
pub async fn find_user(db: impl AnyExecutor<'_>, id: Uuid) -> Result<Option<User>, StoreError> {
    let row = sqlx::query("SELECT * FROM users WHERE id = $1")
        .bind(id.to_string())
        .fetch_optional(db)
        .await?;
    row.as_ref().map(user_from_row).transpose()
}

/// The user with this (normalized) email and its password hash, if any.
pub async fn find_credentials(
    db: impl AnyExecutor<'_>,
    email: &str,
) -> Result<Option<Credentials>, StoreError> {
    let row = sqlx::query("SELECT * FROM users WHERE email = $1")
        .bind(email)
        .fetch_optional(db)
        .await?;
    row.map(|row| {
        Ok(Credentials {
            user: user_from_row(&row)?,
            password_hash: row.try_get("password_hash")?,
        })
    })
    .transpose()
}

/// Remove a user (and, by cascade, whatever they still own).
pub async fn delete_user(db: impl AnyExecutor<'_>, id: Uuid) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM users WHERE id = $1")
        .bind(id.to_string())
        .execute(db)
        .await?;
    Ok(())
}
