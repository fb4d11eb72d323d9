//! Users of an external identity provider: the provider's issuer and
//! subject map to one Colloquy user, created the first time it is seen.

use sqlx::{any::AnyExecutor, Row};

use super::{insert_user, now_millis, users::user_from_row, NewUser, Pool, StoreError, User};

/// Who a verified external token says its bearer is.
pub struct ExternalIdentity<'a> {
    /// The token's `iss` ('' when it has none).
    pub issuer: &'a str,
    pub subject: &'a str,
    pub email: Option<&'a str>,
    pub is_anonymous: bool,
}

/// The user `identity` maps to, created on first sight (anonymous when the
/// token says so). An anonymous user whose provider has since made it a
/// full account (Supabase's linking) becomes a registered user in place,
/// keeping its conversations.
pub async fn user_for_external_identity(
    db: &Pool,
    identity: &ExternalIdentity<'_>,
) -> Result<User, StoreError> {
    if let Some(user) = find_external_user(db, identity).await? {
        if user.is_anonymous && !identity.is_anonymous {
            return register_in_place(db, user, identity.email).await;
        }
        return Ok(user);
    }
    let mut tx = db.begin().await?;
    let email = match identity.email {
        Some(email) if !identity.is_anonymous && !email_taken(&mut *tx, email).await? => {
            Some(email)
        }
        // A local account already has this email: the external user gets
        // none rather than a claim on that account.
        _ => None,
    };
    let user = insert_user(
        &mut *tx,
        NewUser {
            email,
            password_hash: None,
            full_name: None,
            is_anonymous: identity.is_anonymous,
        },
    )
    .await?;
    let linked = sqlx::query(
        "INSERT INTO external_identities (issuer, subject, user_id, created_at)
         VALUES ($1, $2, $3, $4)",
    )
    .bind(identity.issuer)
    .bind(identity.subject)
    .bind(user.id.to_string())
    .bind(now_millis())
    .execute(&mut *tx)
    .await;
    match linked {
        Ok(_) => {
            tx.commit().await?;
            Ok(user)
        }
        // Two first requests raced: the other one created the user.
        Err(error) if super::is_unique_violation(&error) => {
            tx.rollback().await?;
            find_external_user(db, identity)
                .await?
                .ok_or(StoreError::NotFound)
        }
        Err(error) => Err(error.into()),
    }
}

async fn find_external_user(
    db: impl AnyExecutor<'_>,
    identity: &ExternalIdentity<'_>,
) -> Result<Option<User>, StoreError> {
    let row = sqlx::query(
        "SELECT users.* FROM external_identities
         JOIN users ON users.id = external_identities.user_id
         WHERE external_identities.issuer = $1 AND external_identities.subject = $2",
    )
    .bind(identity.issuer)
    .bind(identity.subject)
    .fetch_optional(db)
    .await?;
    row.as_ref().map(user_from_row).transpose()
}

async fn email_taken(db: impl AnyExecutor<'_>, email: &str) -> Result<bool, StoreError> {
    let row = sqlx::query("SELECT COUNT(*) AS n FROM users WHERE email = $1")
        .bind(email)
        .fetch_one(db)
        .await?;
    Ok(row.try_get::<i64, _>("n")? > 0)
}

async fn register_in_place(
    db: &Pool,
    mut user: User,
    email: Option<&str>,
) -> Result<User, StoreError> {
    let mut tx = db.begin().await?;
    let email = match email {
        Some(email) if !email_taken(&mut *tx, email).await? => Some(email),
        _ => None,
    };
    sqlx::query("UPDATE users SET is_anonymous = 0, email = COALESCE($1, email) WHERE id = $2")
        .bind(email)
        .bind(user.id.to_string())
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    user.is_anonymous = false;
    if email.is_some() {
        user.email = email.map(str::to_owned);
    }
    Ok(user)
}
