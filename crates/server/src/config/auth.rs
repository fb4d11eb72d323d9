//! The `[auth]` settings: throttles on creating identities and checking
//! passwords, apart from the rest of the configuration, and (flattened into
//! the same section) the external identity provider.

use serde::{Deserialize, Serialize};

use super::ExternalAuthConfig;

/// Throttles on creating identities and checking passwords (`[auth]`).
/// Each `*_per_*` budget is also the burst: that many at once, then refilled
/// evenly over the period.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct AuthLimitsConfig {
    /// Anonymous sessions one client address may create per hour.
    pub anonymous_per_hour_per_ip: u32,
    /// Accounts one client address may register per hour.
    pub registrations_per_hour_per_ip: u32,
    /// Sign-in attempts per minute from one client address.
    pub logins_per_minute_per_ip: u32,
    /// Sign-in attempts per minute for one email, from any address.
    pub logins_per_minute_per_email: u32,
    /// Password hashes computed at once (argon2: one core and ~19 MiB each).
    pub password_hash_concurrency: usize,
    /// How long a sign-in waits for a hashing slot before it is answered
    /// 503 `overloaded`.
    pub password_hash_wait_ms: u64,
    /// External identity provider tokens (`auth.jwks_url`, ...).
    #[serde(flatten)]
    pub external: ExternalAuthConfig,
}

impl Default for AuthLimitsConfig {
    fn default() -> Self {
        Self {
            anonymous_per_hour_per_ip: 30,
            registrations_per_hour_per_ip: 30,
            logins_per_minute_per_ip: 20,
            logins_per_minute_per_email: 10,
            password_hash_concurrency: std::thread::available_parallelism()
                .map_or(1, |cores| cores.get()),
            password_hash_wait_ms: 500,
            external: ExternalAuthConfig::default(),
        }
    }
}

impl AuthLimitsConfig {
    /// The settings that must be greater than zero, by their full names.
    pub(super) fn positive(&self) -> [(&'static str, usize); 5] {
        [
            (
                "auth.anonymous_per_hour_per_ip",
                self.anonymous_per_hour_per_ip as usize,
            ),
            (
                "auth.registrations_per_hour_per_ip",
                self.registrations_per_hour_per_ip as usize,
            ),
            (
                "auth.logins_per_minute_per_ip",
                self.logins_per_minute_per_ip as usize,
            ),
            (
                "auth.logins_per_minute_per_email",
                self.logins_per_minute_per_email as usize,
            ),
            (
                "auth.password_hash_concurrency",
                self.password_hash_concurrency,
            ),
        ]
    }
}
