//! A user's coaching profile (seed 004): `full_name` and a free-form
//! `user_data` JSON object, stored on the user's row and read into the voice
//! coach's prompt.

use serde::Serialize;
use serde_json::Value;
use sqlx::{
    any::{AnyExecutor, AnyRow},
    Row,
};
use uuid::Uuid;

use super::StoreError;

/// What the coach knows about a user.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Profile {
    pub full_name: Option<String>,
    /// Always a JSON object.
    pub user_data: Value,
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
    })
}

/// The profile of the user with this id, if the user exists.
pub async fn find_profile(
    db: impl AnyExecutor<'_>,
    user_id: Uuid,
) -> Result<Option<Profile>, StoreError> {
    let row = sqlx::query("SELECT full_name, user_data FROM users WHERE id = $1")
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
    db: impl AnyExecutor<'_>,
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
           full_name = CASE WHEN $1 IS NULL THEN full_name ELSE NULLIF($2, '') END,
           user_data = COALESCE($3, user_data)
         WHERE id = $4
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
}
