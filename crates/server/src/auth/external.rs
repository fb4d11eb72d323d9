//! Tokens of an external identity provider (Supabase-style JWTs): signed
//! with the provider's shared HS256 secret or with an RS256/ES256 key from
//! its JWKS document, carrying the configured audience (and issuer, when
//! one is set) and an expiry.

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;

use super::{jwks::JwksCache, InvalidToken};
use crate::config::ExternalAuthConfig;

/// Seconds of clock skew allowed on `exp` and `nbf`, as for our own tokens.
const LEEWAY_SECS: u64 = 30;

/// Verifies external tokens.
pub struct ExternalTokens {
    hs256: Option<DecodingKey>,
    jwks: Option<JwksCache>,
    issuer: Option<String>,
    audience: String,
}

/// What Colloquy reads from an external token.
#[derive(Debug, Deserialize)]
pub struct ExternalClaims {
    pub sub: String,
    #[serde(default)]
    pub iss: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub is_anonymous: bool,
}

impl ExternalTokens {
    /// `None` when `config` accepts no external tokens.
    pub fn from_config(config: &ExternalAuthConfig) -> anyhow::Result<Option<Self>> {
        if !config.enabled() {
            return Ok(None);
        }
        let jwks = config
            .jwks_url
            .clone()
            .map(|url| JwksCache::new(url, config))
            .transpose()?;
        Ok(Some(Self {
            hs256: config
                .external_hs256_secret
                .as_deref()
                .map(|secret| DecodingKey::from_secret(secret.as_bytes())),
            jwks,
            issuer: config.issuer.clone(),
            audience: config.audience.clone(),
        }))
    }

    /// The claims of a valid, unexpired external token.
    pub async fn verify(&self, token: &str) -> Result<ExternalClaims, InvalidToken> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| InvalidToken)?;
        let (key, algorithm) = match header.alg {
            Algorithm::HS256 => (self.hs256.clone().ok_or(InvalidToken)?, Algorithm::HS256),
            Algorithm::RS256 | Algorithm::ES256 => {
                let kid = header.kid.as_deref().ok_or(InvalidToken)?;
                let jwks = self.jwks.as_ref().ok_or(InvalidToken)?;
                let signing = jwks.key(kid).await.ok_or(InvalidToken)?;
                // A key is only good for its own algorithm.
                if signing.algorithm != header.alg {
                    return Err(InvalidToken);
                }
                (signing.key, signing.algorithm)
            }
            _ => return Err(InvalidToken),
        };
        let data = jsonwebtoken::decode::<ExternalClaims>(token, &key, &self.validation(algorithm))
            .map_err(|error| {
                tracing::debug!(%error, "external token refused");
                InvalidToken
            })?;
        let claims = data.claims;
        if claims.sub.is_empty() || claims.sub.len() > MAX_SUBJECT_CHARS {
            return Err(InvalidToken);
        }
        Ok(claims)
    }

    fn validation(&self, algorithm: Algorithm) -> Validation {
        let mut validation = Validation::new(algorithm);
        validation.leeway = LEEWAY_SECS;
        validation.set_audience(&[&self.audience]);
        let mut required = vec!["exp", "sub", "aud"];
        if let Some(issuer) = &self.issuer {
            validation.set_issuer(&[issuer]);
            required.push("iss");
        }
        validation.set_required_spec_claims(&required);
        validation
    }
}

/// Longest `sub` accepted (it is stored): providers use UUIDs or similar.
const MAX_SUBJECT_CHARS: usize = 255;

/// Longest `email` kept from a token; a longer one is dropped.
pub const MAX_EMAIL_CHARS: usize = 254;
