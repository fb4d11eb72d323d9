//! A user's coaching profile (seed 004): `full_name` and a free-form
//! `user_data` JSON object, stored on the user's row and read into the voice
//! coach's prompt; and the user's time zone (an IANA name, checked by the
//! HTTP layer), which days are counted in.

use serde::Serialize;
use serde_json::Value;
use sqlx::{
    any::{AnyExecutor, AnyRow},
    Row,
};
use uuid::Uuid;

use super::StoreError;

/// What the coach knows about a user.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Profile {
    pub full_name: Option<String>,
    /// Always a JSON object.
    pub user_data: Value,
    /// IANA time zone name, `UTC` unless set.
    pub timezone: String,
}

/// What [`update_profile`] changes; `None` leaves a field as it is.
#[derive(Debug, Default)]
pub struct ProfileChanges<'a> {
    /// `Some("")` clears the name.
    pub full_name: Option<&'a str>,
    /// Replaces the stored object whole; must be a JSON object.
    pub user_data: Option<&'a Value>,
    pub timezone: Option<&'a str>,
}

fn profile_from_row(row: &AnyRow) -> Result<Profile, StoreError> {
    let text: String = row.try_get("user_data")?;
    let user_data: Value = serde_json::from_str(&text)
        .map_err(|e| StoreError::Corrupt(format!("user_data is not JSON: {e}")))?;
    if !user_data.is_object() {
        return Err(StoreError::Corrupt("user_data is not an object".into()));
    }
    Ok(Profile {
        full_name: row.try_get("full_name")?,
        user_data,
        timezone: row.try_get("timezone")?,
    })
}

/// The profile of the user with this id, if the user exists.
pub async fn find_profile(
    db: impl AnyExecutor<'_>,
    user_id: Uuid,
) -> Result<Option<Profile>, StoreError> {
    let row = sqlx::query("SELECT full_name, user_data, timezone FROM users WHERE id = $1")
        .bind(user_id.to_string())
        .fetch_optional(db)
        .await?;
    row.as_ref().map(profile_from_row).transpose()
}

/// Change a user's profile and return it (see [`ProfileChanges`]).
/// `user_data` replaces the stored object whole (so a client can remove
/// keys) and must be a JSON object: anything else is refused as a
/// [`StoreError::Conflict`], a caller's bug since the HTTP layer parses it
/// first. A missing user is [`StoreError::NotFound`].
pub async fn update_profile(
    db: impl AnyExecutor<'_>,
    user_id: Uuid,
    changes: ProfileChanges<'_>,
) -> Result<Profile, StoreError> {
    let full_name = changes.full_name;
    let user_data = match changes.user_data {
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
           full_name = CASE WHEN $1 IS NULL THEN full_name ELSE NULLIF($2, '') END,
           user_data = COALESCE($3, user_data),
           timezone = COALESCE($4, timezone)
         WHERE id = $5
         RETURNING full_name, user_data, timezone",
    )
    .bind(full_name)
    .bind(full_name)
    .bind(user_data)
    .bind(changes.timezone)
    .bind(user_id.to_string())
    .fetch_optional(db)
    .await?;
    row.as_ref()
        .map(profile_from_row)
        .transpose()?
        .ok_or(StoreError::NotFound)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::store::testing::database;

    #[tokio::test]
    async fn a_profile_starts_empty_and_updates_field_by_field() {
        let (_dir, pool, user) = database().await;
        let profile = find_profile(&pool, user).await.unwrap().unwrap();
        assert_eq!(profile.full_name.as_deref(), Some("Ada"));
        assert_eq!(profile.user_data, json!({}));

        let data = json!({ "goals": ["run 5k"] });
        let set_data = ProfileChanges {
            user_data: Some(&data),
            ..ProfileChanges::default()
        };
        let profile = update_profile(&pool, user, set_data).await.unwrap();
        assert_eq!(profile.full_name.as_deref(), Some("Ada"), "name kept");
        assert_eq!(profile.user_data, data);

        let clear_name = ProfileChanges {
            full_name: Some(""),
            ..ProfileChanges::default()
        };
        let profile = update_profile(&pool, user, clear_name).await.unwrap();
        assert_eq!(profile.full_name, None, "an empty name clears it");
        assert_eq!(profile.user_data, data, "data kept");

        assert!(matches!(
            update_profile(
                &pool,
                user,
                ProfileChanges {
                    user_data: Some(&json!([1])),
                    ..ProfileChanges::default()
                }
            )
            .await,
            Err(StoreError::Conflict(_))
        ));
        let nobody = Uuid::now_v7();
        assert!(find_profile(&pool, nobody).await.unwrap().is_none());
        assert!(matches!(
            update_profile(
                &pool,
                nobody,
                ProfileChanges {
                    full_name: Some("x"),
                    ..ProfileChanges::default()
                }
            )
            .await,
            Err(StoreError::NotFound)
        ));
    }
}
