//! Authentication: argon2 password hashes, HS256 JWT access tokens, and the
//! [`AuthUser`] extractor that accepts a token as `Authorization: Bearer` or
//! `?token=` on every endpoint and socket. Besides our own tokens, those of
//! an external identity provider ([`external`], keys from [`jwks`]) name
//! users created on first sight.

pub mod external;
pub mod jwks;

use std::{path::Path, time::Duration};

use anyhow::Context;
use argon2::{
    password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString},
    Argon2,
};
use axum::{
    extract::FromRequestParts,
    http::{request::Parts, HeaderMap, Uri},
};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand::{rngs::OsRng, RngCore};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{
    error::AppError,
    limits::PasswordSlot,
    socket::close_code,
    store::{self, User},
    AppState,
};

/// Issues and verifies access tokens.
pub struct TokenService {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    ttl: Duration,
}

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: String,
    iat: u64,
    exp: u64,
    #[serde(default)]
    anon: bool,
}

/// A freshly issued token.
pub struct IssuedToken {
    pub access_token: String,
    pub expires_in: u64,
}

/// Why a token was refused (details stay in logs).
#[derive(Debug, thiserror::Error)]
#[error("invalid token")]
pub struct InvalidToken;

impl TokenService {
    /// A service signing with `secret`, issuing tokens valid for `ttl`.
    pub fn new(secret: &[u8], ttl: Duration) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 30;
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            ttl,
        }
    }

    /// Sign a token for `user`.
    pub fn issue(&self, user: &User) -> anyhow::Result<IssuedToken> {
        let now = jsonwebtoken::get_current_timestamp();
        let claims = Claims {
            sub: user.id.to_string(),
            iat: now,
            exp: now + self.ttl.as_secs(),
            anon: user.is_anonymous,
        };
        let access_token =
            jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
                .context("signing token")?;
        Ok(IssuedToken {
            access_token,
            expires_in: self.ttl.as_secs(),
        })
    }

    /// A short keyed tag (HMAC-SHA256 with the token secret, truncated) of
    /// `message`: lets the server recognize ids it issued without storing
    /// them (see `conversation::issued`). `None` only if signing failed.
    pub fn tag(&self, message: &[u8]) -> Option<[u8; 4]> {
        use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine as _};
        let signature =
            jsonwebtoken::crypto::sign(message, &self.encoding, Algorithm::HS256).ok()?;
        let bytes = URL_SAFE_NO_PAD.decode(signature).ok()?;
        bytes.get(..4)?.try_into().ok()
    }

    /// The user id a valid, unexpired token was issued to.
    pub fn verify(&self, token: &str) -> Result<Uuid, InvalidToken> {
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map_err(|_| InvalidToken)?;
        Uuid::parse_str(&data.claims.sub).map_err(|_| InvalidToken)
    }
}

/// The JWT secret: configured, or generated once and kept in `<data dir>/jwt_secret`.
pub fn load_or_create_secret(configured: Option<&str>, data_dir: &Path) -> anyhow::Result<Vec<u8>> {
    if let Some(secret) = configured {
        return Ok(secret.as_bytes().to_vec());
    }
    let path = data_dir.join("jwt_secret");
    if let Ok(existing) = std::fs::read_to_string(&path) {
        let existing = existing.trim();
        anyhow::ensure!(
            existing.len() >= 32,
            "{} is too short; delete it to generate a new one",
            path.display()
        );
        return Ok(existing.as_bytes().to_vec());
    }
    let mut bytes = [0u8; 32];
    OsRng.fill_bytes(&mut bytes);
    let secret: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    write_private(&path, &secret).with_context(|| format!("writing {}", path.display()))?;
    tracing::info!(path = %path.display(), "generated a new token signing secret");
    Ok(secret.into_bytes())
}

fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)?.write_all(contents.as_bytes())
}

/// Hash a password with argon2id, off the async runtime (it is deliberately
/// slow). `slot` is held until the hash is done, even if the request that
/// asked for it is dropped.
pub async fn hash_password(slot: PasswordSlot, password: String) -> anyhow::Result<String> {
    tokio::task::spawn_blocking(move || {
        let _slot = slot;
        let salt = SaltString::generate(&mut OsRng);
        Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|hash| hash.to_string())
            .map_err(|e| anyhow::anyhow!("hashing password: {e}"))
    })
    .await?
}

/// Check a password against a stored hash; a missing hash still costs one
/// verification so response time does not reveal whether an email exists.
/// `slot` is held as in [`hash_password`].
pub async fn verify_password(
    slot: PasswordSlot,
    password: String,
    hash: Option<String>,
) -> anyhow::Result<bool> {
    tokio::task::spawn_blocking(move || {
        let _slot = slot;
        let stored = hash.as_deref().unwrap_or_else(|| dummy_hash());
        let Ok(parsed) = PasswordHash::new(stored) else {
            return Ok(false);
        };
        let matches = Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok();
        Ok(matches && hash.is_some())
    })
    .await?
}

/// A real hash of a random password, verified against when the email is
/// unknown so that both paths cost the same.
fn dummy_hash() -> &'static str {
    static HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HASH.get_or_init(|| {
        let salt = SaltString::generate(&mut OsRng);
        let mut password = [0u8; 16];
        OsRng.fill_bytes(&mut password);
        Argon2::default()
            .hash_password(&password, &salt)
            .map(|hash| hash.to_string())
            .unwrap_or_default()
    })
}

/// The access token of a request: `Authorization: Bearer <t>` first, else `?token=<t>`.
pub fn token_from(headers: &HeaderMap, uri: &Uri) -> Option<String> {
    let from_header = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| {
            let (scheme, token) = value.split_once(' ')?;
            scheme
                .eq_ignore_ascii_case("bearer")
                .then(|| token.trim().to_owned())
        });
    from_header.or_else(|| {
        let query = uri.query()?;
        form_urlencoded_pairs(query).find_map(|(key, value)| (key == "token").then_some(value))
    })
}

fn form_urlencoded_pairs(query: &str) -> impl Iterator<Item = (String, String)> + '_ {
    serde_urlencoded::from_str::<Vec<(String, String)>>(query)
        .unwrap_or_default()
        .into_iter()
}

/// Why a request or socket was not let in: seed 004's words for real
/// authentication failures, or a storage failure the client should retry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthFailure {
    NotAuthenticated,
    UserNotFound,
    /// The user could not be loaded (the database failed): not the
    /// client's fault, so never a sign-out.
    Unavailable,
}

impl AuthFailure {
    /// The WebSocket close code and reason: 1008 for authentication
    /// failures (final), 1011 when storage failed (retry).
    pub fn close(self) -> (u16, &'static str) {
        match self {
            AuthFailure::NotAuthenticated => (close_code::POLICY, "Not authenticated"),
            AuthFailure::UserNotFound => (close_code::POLICY, "User not found"),
            AuthFailure::Unavailable => (close_code::INTERNAL_ERROR, "Service unavailable"),
        }
    }
}

impl From<AuthFailure> for AppError {
    fn from(failure: AuthFailure) -> Self {
        match failure {
            AuthFailure::NotAuthenticated | AuthFailure::UserNotFound => AppError::Unauthorized,
            AuthFailure::Unavailable => AppError::unavailable(),
        }
    }
}

/// Verify the request's token and load its user.
pub async fn authenticate(
    state: &AppState,
    headers: &HeaderMap,
    uri: &Uri,
) -> Result<User, AuthFailure> {
    let token = token_from(headers, uri).ok_or(AuthFailure::NotAuthenticated)?;
    user_for_token(state, &token).await
}

/// The user a token names: one of ours, else (when configured) one of the
/// external identity provider's, whose user is created on first sight.
pub async fn user_for_token(state: &AppState, token: &str) -> Result<User, AuthFailure> {
    if let Ok(user_id) = state.tokens.verify(token) {
        return match store::find_user(&state.db, user_id).await {
            Ok(Some(user)) => Ok(user),
            Ok(None) => Err(AuthFailure::UserNotFound),
            Err(error) => {
                tracing::error!(%error, "loading user failed");
                Err(AuthFailure::Unavailable)
            }
        };
    }
    let external = state
        .external_tokens
        .as_ref()
        .ok_or(AuthFailure::NotAuthenticated)?;
    let claims = external
        .verify(token)
        .await
        .map_err(|_| AuthFailure::NotAuthenticated)?;
    let email = claims
        .email
        .as_deref()
        .map(|email| email.trim().to_lowercase())
        .filter(|email| !email.is_empty() && email.len() <= external::MAX_EMAIL_CHARS);
    let identity = store::ExternalIdentity {
        issuer: claims.iss.as_deref().unwrap_or_default(),
        subject: &claims.sub,
        email: email.as_deref(),
        is_anonymous: claims.is_anonymous,
    };
    store::user_for_external_identity(&state.db, &identity)
        .await
        .map_err(|error| {
            tracing::error!(%error, "loading an external user failed");
            AuthFailure::Unavailable
        })
}

/// The signed-in (or anonymous) user making an HTTP request; 401 otherwise
/// (503 when storage failed).
pub struct AuthUser(pub User);

impl FromRequestParts<AppState> for AuthUser {
    type Rejection = AppError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let user = authenticate(state, &parts.headers, &parts.uri).await?;
        Ok(AuthUser(user))
    }
}

/// A signed-in user listed in the `admins` setting (by id or email); 403
/// for anyone else.
pub struct AdminUser(pub User);

/// Whether `admins` (user ids or emails) names `user`.
pub fn is_admin(admins: &[String], user: &User) -> bool {
    let id = user.id.to_string();
    admins.iter().map(|admin| admin.trim()).any(|admin| {
        admin.eq_ignore_ascii_case(&id)
            || user
                .email
                .as_deref()
                .is_some_and(|email| admin.eq_ignore_ascii_case(email))
    })
}

impl FromRequestParts<AppState> for AdminUser {
    type Rejection = AppError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let AuthUser(user) = AuthUser::from_request_parts(parts, state).await?;
        if !is_admin(&state.config.admins, &user) {
            return Err(AppError::Forbidden {
                code: "admin_required",
                message: "only administrators may do this".into(),
            });
        }
        Ok(AdminUser(user))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(anon: bool) -> User {
        User {
            id: Uuid::now_v7(),
            email: None,
            full_name: None,
            is_anonymous: anon,
            created_at: chrono::Utc::now(),
        }
    }

    #[test]
    fn issued_token_verifies_to_its_user() {
        let tokens = TokenService::new(&[7; 32], Duration::from_secs(60));
        let user = user(false);
        let issued = tokens.issue(&user).unwrap();
        assert_eq!(tokens.verify(&issued.access_token).unwrap(), user.id);
    }

    #[test]
    fn token_signed_with_another_secret_is_rejected() {
        let issued = TokenService::new(&[1; 32], Duration::from_secs(60))
            .issue(&user(false))
            .unwrap();
        let other = TokenService::new(&[2; 32], Duration::from_secs(60));
        assert!(other.verify(&issued.access_token).is_err());
        assert!(other.verify("not-a-jwt").is_err());
    }

    #[test]
    fn token_is_read_from_header_then_query() {
        let request = axum::http::Request::builder()
            .uri("/x?a=1&token=q%2Bt")
            .body(())
            .unwrap();
        let (parts, _) = request.into_parts();
        assert_eq!(
            token_from(&parts.headers, &parts.uri).as_deref(),
            Some("q+t")
        );
        let request = axum::http::Request::builder()
            .uri("/x?token=q")
            .header("Authorization", "Bearer h")
            .body(())
            .unwrap();
        let (parts, _) = request.into_parts();
        assert_eq!(token_from(&parts.headers, &parts.uri).as_deref(), Some("h"));
    }

    #[tokio::test]
    async fn password_hash_round_trip() {
        let limits = crate::limits::Limits::new(&crate::config::Config::default());
        let slot = || async { limits.password_slot().await.unwrap() };
        let hash = hash_password(slot().await, "correct horse".into())
            .await
            .unwrap();
        let verify = |password: &str, hash: Option<String>| {
            let password = password.to_owned();
            async { verify_password(slot().await, password, hash).await.unwrap() }
        };
        assert!(verify("correct horse", Some(hash.clone())).await);
        assert!(!verify("wrong", Some(hash)).await);
        assert!(!verify("x", None).await);
    }

    #[test]
    fn admins_are_named_by_id_or_email() {
        let mut ada = user(false);
        ada.email = Some("ada@example.com".into());
        let by_email = vec!["Ada@Example.com".to_owned()];
        let by_id = vec![ada.id.to_string()];
        assert!(is_admin(&by_email, &ada));
        assert!(is_admin(&by_id, &ada));
        assert!(!is_admin(&by_email, &user(false)));
        assert!(!is_admin(&[], &ada));
    }

    #[test]
    fn storage_failures_close_sockets_with_a_retryable_code() {
        assert_eq!(AuthFailure::NotAuthenticated.close().0, 1008);
        assert_eq!(AuthFailure::UserNotFound.close().0, 1008);
        assert_eq!(AuthFailure::Unavailable.close().0, 1011);
    }
}
