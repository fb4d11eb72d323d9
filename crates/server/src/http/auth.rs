//! `/auth/register`, `/auth/login`, anonymous sessions and claiming them
//! (seed 000). Creating identities and checking passwords are throttled per
//! client address (and sign-ins per email) and answered 429 with
//! `Retry-After` beyond their budgets; password hashing waits briefly for a
//! slot and is answered 503 `overloaded` when none frees up.

use axum::{extract::State, http::StatusCode, Json};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{
    auth::{hash_password, user_for_token, verify_password, AuthFailure, AuthUser},
    billing::CurrentPlan,
    client_ip::ClientIp,
    error::{ApiJson, AppError},
    limits::{AuthAction, PasswordSlot},
    store::{self, NewUser, User},
    AppState,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(register))
        .routes(routes!(login))
        .routes(routes!(anonymous))
        .routes(routes!(claim))
        .routes(routes!(me))
}

const MIN_PASSWORD_CHARS: usize = 8;
const MAX_PASSWORD_CHARS: usize = 1024;
const MAX_EMAIL_CHARS: usize = 254;
const MAX_NAME_CHARS: usize = 200;

/// The body of every successful sign-in.
#[derive(Serialize, ToSchema)]
struct TokenResponse {
    /// Send as `Authorization: Bearer <access_token>` (or `?token=`).
    access_token: String,
    /// Always `bearer`.
    token_type: &'static str,
    /// Seconds until the token expires.
    expires_in: u64,
    user: User,
}

fn token_response(state: &AppState, user: User) -> Result<TokenResponse, AppError> {
    let issued = state.tokens.issue(&user).map_err(AppError::Internal)?;
    Ok(TokenResponse {
        access_token: issued.access_token,
        token_type: "bearer",
        expires_in: issued.expires_in,
        user,
    })
}

/// Spend one of `client`'s budget for `action`, or refuse with 429.
fn throttle(state: &AppState, action: AuthAction, client: ClientIp) -> Result<(), AppError> {
    state
        .limits
        .check_auth(action, client.rate_key())
        .map_err(|retry_after| AppError::TooManyRequests {
            message: match action {
                AuthAction::Anonymous => {
                    "too many guest sessions from this address; try again later"
                }
                AuthAction::Register => "too many sign-ups from this address; try again later",
                AuthAction::Login => "too many sign-in attempts; try again later",
            },
            retry_after,
        })
}

/// A password hashing slot, or 503 `overloaded` when none frees up soon.
async fn password_slot(state: &AppState) -> Result<PasswordSlot, AppError> {
    state.limits.password_slot().await.map_err(|_| {
        tracing::warn!("password hashing is saturated; refusing a sign-in");
        AppError::overloaded()
    })
}

/// Lowercased, trimmed, plausible email (the mail server is the real judge).
fn normalize_email(email: &str) -> Result<String, AppError> {
    let email = email.trim().to_lowercase();
    let plausible = email.chars().count() <= MAX_EMAIL_CHARS
        && !email.chars().any(|c| c.is_whitespace() || c.is_control())
        && matches!(email.split_once('@'), Some((local, domain)) if !local.is_empty() && domain.contains('.') && !domain.starts_with('.') && !domain.ends_with('.'));
    if !plausible {
        return Err(AppError::bad_request(
            "invalid_email",
            "email address is not valid",
        ));
    }
    Ok(email)
}

#[derive(Deserialize, ToSchema)]
struct RegisterBody {
    /// Compared lowercased and trimmed.
    email: String,
    /// 8 to 1024 characters.
    password: String,
    /// One line of at most 200 characters.
    #[serde(default)]
    full_name: Option<String>,
}

/// Create an account and sign in.
///
/// Throttled per client address (429 with `Retry-After`); 503 `overloaded`
/// when password hashing is saturated.
#[utoipa::path(
    post, path = "/auth/register", tag = "auth",
    request_body = RegisterBody,
    responses(
        (status = 201, description = "Registered and signed in.", body = TokenResponse),
        (status = 400, description = "`invalid_email`, `invalid_password`, `invalid_full_name` or a malformed body."),
        (status = 409, description = "`conflict`: the email is taken."),
        (status = 429, description = "`rate_limited`: too many sign-ups from this address."),
    ),
)]
async fn register(
    State(state): State<AppState>,
    client: ClientIp,
    ApiJson(body): ApiJson<RegisterBody>,
) -> Result<(StatusCode, Json<TokenResponse>), AppError> {
    throttle(&state, AuthAction::Register, client)?;
    let email = normalize_email(&body.email)?;
    let password_chars = body.password.chars().count();
    if !(MIN_PASSWORD_CHARS..=MAX_PASSWORD_CHARS).contains(&password_chars) {
        return Err(AppError::bad_request(
            "invalid_password",
            format!("password must be {MIN_PASSWORD_CHARS} to {MAX_PASSWORD_CHARS} characters"),
        ));
    }
    let full_name = body
        .full_name
        .as_deref()
        .map(str::trim)
        .filter(|n| !n.is_empty());
    if full_name
        .is_some_and(|n| n.chars().count() > MAX_NAME_CHARS || n.chars().any(char::is_control))
    {
        return Err(AppError::bad_request(
            "invalid_full_name",
            format!("full_name must be one line of at most {MAX_NAME_CHARS} characters"),
        ));
    }
    let slot = password_slot(&state).await?;
    let hash = hash_password(slot, body.password)
        .await
        .map_err(AppError::Internal)?;
    let user = store::insert_user(
        &state.db,
        NewUser {
            email: Some(&email),
            password_hash: Some(&hash),
            full_name,
            is_anonymous: false,
        },
    )
    .await?;
    tracing::info!(user_id = %user.id, "user registered");
    Ok((StatusCode::CREATED, Json(token_response(&state, user)?)))
}

#[derive(Deserialize, ToSchema)]
struct LoginBody {
    email: String,
    password: String,
}

/// Sign in with an email and password.
///
/// Throttled per client address and per email (429 with `Retry-After`).
#[utoipa::path(
    post, path = "/auth/login", tag = "auth",
    request_body = LoginBody,
    responses(
        (status = 200, description = "Signed in.", body = TokenResponse),
        (status = 400, description = "A malformed body."),
        (status = 401, description = "`invalid_credentials`."),
        (status = 429, description = "`rate_limited`: too many attempts."),
    ),
)]
async fn login(
    State(state): State<AppState>,
    client: ClientIp,
    ApiJson(body): ApiJson<LoginBody>,
) -> Result<Json<TokenResponse>, AppError> {
    throttle(&state, AuthAction::Login, client)?;
    let email = body.email.trim().to_lowercase();
    // Bounded, so made-up emails cost the throttle little memory.
    let email_key: String = email.chars().take(MAX_EMAIL_CHARS).collect();
    state
        .limits
        .check_login_email(&email_key)
        .map_err(|retry_after| AppError::TooManyRequests {
            message: "too many sign-in attempts for this account; try again later",
            retry_after,
        })?;
    let slot = password_slot(&state).await?;
    let credentials = store::find_credentials(&state.db, &email).await?;
    let (user, hash) = match credentials {
        Some(c) => (Some(c.user), c.password_hash),
        None => (None, None),
    };
    let valid = verify_password(slot, body.password, hash)
        .await
        .map_err(AppError::Internal)?;
    match user {
        Some(user) if valid => Ok(Json(token_response(&state, user)?)),
        _ => Err(AppError::InvalidCredentials),
    }
}

/// Start a guest session.
///
/// An anonymous user that can chat at once; its conversations can later be
/// claimed by an account (`POST /api/auth/claim`). Throttled per address.
#[utoipa::path(
    post, path = "/api/auth/anonymous", tag = "auth",
    responses(
        (status = 201, description = "A guest user and its token.", body = TokenResponse),
        (status = 429, description = "`rate_limited`: too many guest sessions from this address."),
    ),
)]
async fn anonymous(
    State(state): State<AppState>,
    client: ClientIp,
) -> Result<(StatusCode, Json<TokenResponse>), AppError> {
    throttle(&state, AuthAction::Anonymous, client)?;
    let user = store::insert_user(
        &state.db,
        NewUser {
            email: None,
            password_hash: None,
            full_name: None,
            is_anonymous: true,
        },
    )
    .await?;
    Ok((StatusCode::CREATED, Json(token_response(&state, user)?)))
}

#[derive(Deserialize, ToSchema)]
struct ClaimBody {
    /// The guest session's access token.
    anonymous_token: String,
}

/// What a claim moved.
#[derive(Serialize, ToSchema)]
struct Claimed {
    claimed_conversations: u64,
    /// The caller.
    user: User,
}

/// Claim a guest session's conversations.
///
/// Move an anonymous user's conversations to the signed-in caller, then
/// retire the anonymous user (its token stops working).
#[utoipa::path(
    post, path = "/api/auth/claim", tag = "auth",
    request_body = ClaimBody,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Claimed.", body = Claimed),
        (status = 400, description = "`sign_in_required` (the caller is a guest) or `invalid_anonymous_token`."),
    ),
)]
async fn claim(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    ApiJson(body): ApiJson<ClaimBody>,
) -> Result<Json<Claimed>, AppError> {
    if user.is_anonymous {
        return Err(AppError::bad_request(
            "sign_in_required",
            "sign in with an account before claiming an anonymous session",
        ));
    }
    let invalid = || {
        AppError::bad_request(
            "invalid_anonymous_token",
            "anonymous_token is not a valid anonymous session",
        )
    };
    // Our guest tokens and the identity provider's anonymous ones alike.
    let anonymous = user_for_token(&state, &body.anonymous_token)
        .await
        .map_err(|failure| match failure {
            AuthFailure::Unavailable => AppError::from(failure),
            _ => invalid(),
        })?;
    if !anonymous.is_anonymous {
        return Err(invalid());
    }
    let mut tx = state
        .db
        .begin()
        .await
        .map_err(|e| AppError::Internal(e.into()))?;
    let moved = store::transfer_conversations(&mut *tx, anonymous.id, user.id).await?;
    store::delete_user(&mut *tx, anonymous.id).await?;
    tx.commit()
        .await
        .map_err(|e| AppError::Internal(e.into()))?;
    tracing::info!(user_id = %user.id, moved, "anonymous session claimed");
    Ok(Json(Claimed {
        claimed_conversations: moved,
        user,
    }))
}

/// The caller and their plan.
#[derive(Serialize, ToSchema)]
struct Me {
    #[serde(flatten)]
    user: User,
    /// Name, `status` (`default` without a paid plan), `renews_at` and
    /// `cancel_at_period_end`.
    plan: CurrentPlan,
}

/// The caller's user, with their plan.
#[utoipa::path(
    get, path = "/api/auth/me", tag = "auth",
    security(("bearer" = [])),
    responses((status = 200, description = "The caller.", body = Me)),
)]
async fn me(State(state): State<AppState>, AuthUser(user): AuthUser) -> Result<Json<Me>, AppError> {
    let plan = state
        .billing
        .plan_of(user.id)
        .await?
        .ok_or(AppError::Unauthorized)?;
    Ok(Json(Me { user, plan }))
}

#[cfg(test)]
mod tests {
    use super::normalize_email;

    #[test]
    fn emails_are_normalized_and_checked() {
        assert_eq!(
            normalize_email("  Ada@Example.COM ").unwrap(),
            "ada@example.com"
        );
        for bad in [
            "",
            "ada",
            "@example.com",
            "ada@",
            "ada@example",
            "a da@example.com",
            "ada@.com",
        ] {
            assert!(normalize_email(bad).is_err(), "{bad} should be refused");
        }
    }
}
