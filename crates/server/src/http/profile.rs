//! The caller's coaching profile under `/api/profile` (seed 004): the full
//! name and a free-form `user_data` JSON object (goals, preferences, ...)
//! that the voice coach reads into its instructions, and the time zone
//! (IANA name) the caller's days are counted in; plus `GET /api/streak`,
//! the daily activity streak counted in that zone.

use axum::{extract::State, Json};
use serde::{Deserialize, Deserializer};
use serde_json::Value;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{
    auth::AuthUser,
    error::{ApiJson, AppError},
    store::{self, Profile},
    streak::Streak,
    AppState,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(show, update))
        .routes(routes!(streak))
}

/// Longest full name, in characters (the registration limit).
const MAX_NAME_CHARS: usize = 200;
/// Largest `user_data`, as compact JSON. It goes into every voice session's
/// prompt, so it stays far below the request body limit.
const MAX_USER_DATA_BYTES: usize = 16 * 1024;

/// The caller's profile.
#[utoipa::path(
    get, path = "/api/profile", tag = "profile",
    security(("bearer" = [])),
    responses((status = 200, description = "The profile.", body = Profile)),
)]
async fn show(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
) -> Result<Json<Profile>, AppError> {
    let profile = store::find_profile(&state.db, user.id)
        .await?
        .ok_or(AppError::NotFound("user"))?;
    Ok(Json(profile))
}

#[derive(Deserialize, ToSchema)]
struct UpdateBody {
    /// Absent: unchanged; `null` or blank: cleared.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    full_name: Option<Option<String>>,
    /// Absent (or `null`): unchanged; an object (at most 16 KiB of JSON)
    /// replaces the stored one.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    user_data: Option<Value>,
    /// Absent (or `null`): unchanged; else an IANA name such as `Europe/Paris`.
    #[serde(default)]
    timezone: Option<String>,
}

/// Tells a field that is present (even as `null`) from one that is absent,
/// which `#[serde(default)]` leaves as `None`.
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    deserializer: D,
) -> Result<Option<T>, D::Error> {
    T::deserialize(deserializer).map(Some)
}

/// Change the caller's profile.
///
/// Only the fields present change.
#[utoipa::path(
    patch, path = "/api/profile", tag = "profile",
    request_body = UpdateBody,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The profile as changed.", body = Profile),
        (status = 400, description = "`invalid_full_name`, `invalid_user_data`, `user_data_too_large`, `invalid_timezone` or a malformed body."),
    ),
)]
async fn update(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    ApiJson(body): ApiJson<UpdateBody>,
) -> Result<Json<Profile>, AppError> {
    // The store clears the name on an empty string.
    let full_name = body
        .full_name
        .as_ref()
        .map(|name| parse_full_name(name.as_deref()))
        .transpose()?;
    if let Some(data) = &body.user_data {
        check_user_data(data)?;
    }
    if let Some(zone) = &body.timezone {
        if crate::streak::parse_timezone(zone).is_none() {
            return Err(AppError::bad_request(
                "invalid_timezone",
                "timezone must be an IANA time zone name, such as Europe/Paris or UTC",
            ));
        }
    }
    let changes = store::ProfileChanges {
        full_name,
        user_data: body.user_data.as_ref(),
        timezone: body.timezone.as_deref(),
    };
    let profile = store::update_profile(&state.db, user.id, changes)
        .await
        .map_err(|e| match e {
            store::StoreError::NotFound => AppError::NotFound("user"),
            other => other.into(),
        })?;
    if body.timezone.is_some() {
        // Its days are counted in the new zone from now on.
        state.streaks.forget(user.id);
    }
    Ok(Json(profile))
}

/// The caller's daily activity streak.
///
/// Days in a row with a user message, counted in the profile's time zone.
#[utoipa::path(
    get, path = "/api/streak", tag = "profile",
    security(("bearer" = [])),
    responses((status = 200, description = "The streak.", body = Streak)),
)]
async fn streak(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
) -> Result<Json<Streak>, AppError> {
    let streak = state
        .streaks
        .current(user.id)
        .await?
        .ok_or(AppError::NotFound("user"))?;
    Ok(Json(streak))
}

/// A trimmed single-line name; `None` or blank becomes `""` (clear).
fn parse_full_name(name: Option<&str>) -> Result<&str, AppError> {
    let name = name.map(str::trim).unwrap_or_default();
    if name.chars().count() > MAX_NAME_CHARS || name.chars().any(char::is_control) {
        return Err(AppError::bad_request(
            "invalid_full_name",
            format!("full_name must be one line of at most {MAX_NAME_CHARS} characters"),
        ));
    }
    Ok(name)
}

fn check_user_data(data: &Value) -> Result<(), AppError> {
    if !data.is_object() {
        return Err(AppError::bad_request(
            "invalid_user_data",
            "user_data must be a JSON object",
        ));
    }
    // Serializing a `Value` cannot fail; a failure would only mean "too big".
    let size = serde_json::to_vec(data).map_or(usize::MAX, |bytes| bytes.len());
    if size > MAX_USER_DATA_BYTES {
        return Err(AppError::bad_request(
            "user_data_too_large",
            format!("user_data must be at most {MAX_USER_DATA_BYTES} bytes of JSON"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn names_are_trimmed_and_blank_clears() {
        assert_eq!(
            parse_full_name(Some("  Ada Lovelace ")).unwrap(),
            "Ada Lovelace"
        );
        assert_eq!(parse_full_name(Some("   ")).unwrap(), "");
        assert_eq!(parse_full_name(None).unwrap(), "");
        assert!(parse_full_name(Some("two\nlines")).is_err());
        assert!(parse_full_name(Some(&"n".repeat(MAX_NAME_CHARS + 1))).is_err());
    }

    #[test]
    fn user_data_is_a_bounded_object() {
        assert!(check_user_data(&json!({ "goals": ["sleep more"] })).is_ok());
        for bad in [json!([1, 2]), json!("text"), json!(3)] {
            assert!(check_user_data(&bad).is_err(), "{bad} is not an object");
        }
        let big = json!({ "notes": "x".repeat(MAX_USER_DATA_BYTES) });
        assert!(check_user_data(&big).is_err());
    }

    #[test]
    fn absent_null_and_given_names_differ() {
        let absent: UpdateBody = serde_json::from_value(json!({})).unwrap();
        assert_eq!(absent.full_name, None);
        let null: UpdateBody = serde_json::from_value(json!({ "full_name": null })).unwrap();
        assert_eq!(null.full_name, Some(None));
        let given: UpdateBody = serde_json::from_value(json!({ "full_name": "Ada" })).unwrap();
        assert_eq!(given.full_name, Some(Some("Ada".into())));
    }
}
