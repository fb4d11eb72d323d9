//! The external identity provider settings inside `[auth]`: which
//! Supabase-style JWTs are accepted besides Colloquy's own tokens, and how
//! the provider's signing keys (a JWKS document) are fetched and cached.

use anyhow::bail;
use serde::{Deserialize, Serialize};

/// Longest the JWKS document may be cached: a provider that rotates its keys
/// must not wait on us for longer.
pub const MAX_JWKS_CACHE_SECS: u64 = 600;

/// External JWTs (`[auth]`: `jwks_url`, `external_hs256_secret`, `issuer`,
/// `audience` and the JWKS cache bounds). Neither a JWKS URL nor a secret:
/// only Colloquy's own tokens are accepted.
#[derive(Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct ExternalAuthConfig {
    /// The provider's JWKS document (RS256 and ES256 keys), e.g.
    /// `https://<project>.supabase.co/auth/v1/.well-known/jwks.json`.
    pub jwks_url: Option<String>,
    /// The provider's shared HS256 secret (Supabase's legacy JWT secret).
    pub external_hs256_secret: Option<String>,
    /// The `iss` external tokens must carry; unchecked when unset.
    pub issuer: Option<String>,
    /// The `aud` external tokens must carry.
    pub audience: String,
    /// How long a fetched JWKS document is trusted (at most 600 s).
    pub jwks_cache_secs: u64,
    /// Least time between two fetches caused by an unknown `kid`, so forged
    /// tokens cannot make us hammer the provider.
    pub jwks_min_refetch_secs: u64,
    /// Longest a JWKS fetch may take.
    pub jwks_fetch_timeout_ms: u64,
    /// Largest JWKS document accepted, in bytes.
    pub jwks_max_bytes: usize,
}

impl Default for ExternalAuthConfig {
    fn default() -> Self {
        Self {
            jwks_url: None,
            external_hs256_secret: None,
            issuer: None,
            audience: "authenticated".into(),
            jwks_cache_secs: MAX_JWKS_CACHE_SECS,
            jwks_min_refetch_secs: 30,
            jwks_fetch_timeout_ms: 5_000,
            jwks_max_bytes: 64 * 1024,
        }
    }
}

// By hand, so the shared secret never reaches a log.
impl std::fmt::Debug for ExternalAuthConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExternalAuthConfig")
            .field("jwks_url", &self.jwks_url)
            .field(
                "external_hs256_secret",
                &self.external_hs256_secret.as_ref().map(|_| "<redacted>"),
            )
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("jwks_cache_secs", &self.jwks_cache_secs)
            .field("jwks_min_refetch_secs", &self.jwks_min_refetch_secs)
            .finish_non_exhaustive()
    }
}

impl ExternalAuthConfig {
    /// Whether external tokens are accepted at all.
    pub fn enabled(&self) -> bool {
        self.jwks_url.is_some() || self.external_hs256_secret.is_some()
    }

    pub(super) fn validate(&self) -> anyhow::Result<()> {
        if let Some(url) = &self.jwks_url {
            if !(url.starts_with("https://") || url.starts_with("http://")) {
                bail!("invalid configuration: auth.jwks_url must be an http(s) URL");
            }
        }
        if self
            .external_hs256_secret
            .as_ref()
            .is_some_and(|secret| secret.len() < 32)
        {
            bail!(
                "invalid configuration: auth.external_hs256_secret must be at least 32 characters"
            );
        }
        if self.audience.trim().is_empty() {
            bail!("invalid configuration: auth.audience must not be empty");
        }
        if !(1..=MAX_JWKS_CACHE_SECS).contains(&self.jwks_cache_secs) {
            bail!("invalid configuration: auth.jwks_cache_secs must be between 1 and {MAX_JWKS_CACHE_SECS}");
        }
        if self.jwks_fetch_timeout_ms == 0 || self.jwks_max_bytes == 0 {
            bail!("invalid configuration: auth.jwks_fetch_timeout_ms and auth.jwks_max_bytes must be greater than 0");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::config::{Config, Overrides};

    fn load(file: &str) -> anyhow::Result<Config> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("colloquy.toml");
        std::fs::write(&path, file)?;
        Config::load(Some(&path), &Overrides::default())
    }

    #[test]
    fn external_auth_loads_from_file_and_environment_and_bad_values_stop_the_start() {
        // Names only this test sets: the environment is the process's.
        std::env::set_var("COLLOQUY_AUTH__JWKS_URL", "https://idp.example/jwks.json");
        std::env::set_var("COLLOQUY_AUTH__AUDIENCE", "colloquy-env-test");
        let config = load(
            "[auth]\nissuer = \"https://idp.example/auth/v1\"\nlogins_per_minute_per_ip = 5\n",
        );
        std::env::remove_var("COLLOQUY_AUTH__JWKS_URL");
        std::env::remove_var("COLLOQUY_AUTH__AUDIENCE");
        let config = config.unwrap();
        let external = &config.auth.external;
        assert_eq!(
            external.jwks_url.as_deref(),
            Some("https://idp.example/jwks.json")
        );
        assert_eq!(
            external.issuer.as_deref(),
            Some("https://idp.example/auth/v1")
        );
        assert_eq!(external.audience, "colloquy-env-test");
        assert_eq!(config.auth.logins_per_minute_per_ip, 5);
        assert!(external.enabled());

        // Bad values stop the start (after the environment is clean again:
        // it would override the file).
        for (file, named) in [
            ("[auth]\njwks_cache_secs = 601\n", "jwks_cache_secs"),
            ("[auth]\njwks_url = \"ftp://idp\"\n", "jwks_url"),
            (
                "[auth]\nexternal_hs256_secret = \"short\"\n",
                "external_hs256_secret",
            ),
            ("[auth]\njwks_ur = \"https://idp\"\n", "jwks_ur"),
        ] {
            let error = load(file).unwrap_err();
            assert!(format!("{error:#}").contains(named), "{file}: {error:#}");
        }
    }

    #[test]
    fn debug_hides_the_shared_secret() {
        let config = super::ExternalAuthConfig {
            external_hs256_secret: Some("s".repeat(40)),
            ..Default::default()
        };
        assert!(!format!("{config:?}").contains(&"s".repeat(40)));
    }
}
