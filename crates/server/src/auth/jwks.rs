//! The external provider's signing keys: its JWKS document, fetched over
//! HTTP and cached for at most `auth.jwks_cache_secs`. A token naming a `kid`
//! the cache lacks triggers a refetch (the provider rotated its keys), at
//! most once per `auth.jwks_min_refetch_secs`, so forged tokens cannot turn
//! us into a request storm against the provider. One fetch runs at a time;
//! requests arriving meanwhile wait for it (bounded by the fetch timeout)
//! and share its result.

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

use futures::StreamExt;
use jsonwebtoken::{
    jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm},
    Algorithm, DecodingKey,
};

use crate::config::ExternalAuthConfig;

/// Most keys kept from one document; real providers publish a handful.
const MAX_KEYS: usize = 32;

/// A verification key and the one algorithm it may be used with.
#[derive(Clone)]
pub struct SigningKey {
    pub key: DecodingKey,
    pub algorithm: Algorithm,
}

/// The cached keys of one JWKS URL.
pub struct JwksCache {
    url: String,
    http: reqwest::Client,
    ttl: Duration,
    min_refetch: Duration,
    fetch_timeout: Duration,
    max_bytes: usize,
    cached: Mutex<Cached>,
    /// Held while fetching: one fetch at a time.
    fetching: tokio::sync::Mutex<()>,
}

#[derive(Default)]
struct Cached {
    keys: HashMap<String, SigningKey>,
    fetched_at: Option<Instant>,
    last_attempt: Option<Instant>,
}

impl JwksCache {
    pub fn new(url: String, config: &ExternalAuthConfig) -> anyhow::Result<Self> {
        let fetch_timeout = Duration::from_millis(config.jwks_fetch_timeout_ms);
        let http = reqwest::Client::builder().timeout(fetch_timeout).build()?;
        Ok(Self {
            url,
            http,
            ttl: Duration::from_secs(config.jwks_cache_secs),
            min_refetch: Duration::from_secs(config.jwks_min_refetch_secs),
            fetch_timeout,
            max_bytes: config.jwks_max_bytes,
            cached: Mutex::new(Cached::default()),
            fetching: tokio::sync::Mutex::new(()),
        })
    }

    /// The key named `kid`, fetching the document when the cache is stale
    /// or lacks it (and no fetch happened too recently).
    pub async fn key(&self, kid: &str) -> Option<SigningKey> {
        let started = Instant::now();
        if let Some(found) = self.cached_key(kid, started) {
            return found;
        }
        let _fetching = tokio::time::timeout(self.fetch_timeout, self.fetching.lock())
            .await
            .ok()?;
        // Whoever held the lock may just have fetched what we need.
        if let Some(found) = self.cached_key(kid, started) {
            return found;
        }
        self.refresh().await;
        self.lookup(kid)
    }

    /// `Some(answer)` when the cache can answer without a fetch: fresh and
    /// holding `kid`, or a fetch was attempted too recently (or since this
    /// request started) to try again.
    fn cached_key(&self, kid: &str, request_started: Instant) -> Option<Option<SigningKey>> {
        let cached = self.lock();
        let fresh = cached.fetched_at.is_some_and(|at| at.elapsed() < self.ttl);
        let found = cached.keys.get(kid).cloned();
        if fresh && found.is_some() {
            return Some(found);
        }
        // A stale cache is refetched at once, unless its last fetch failed
        // recently: then the old keys serve until the next try.
        let failed_last = cached.fetched_at != cached.last_attempt;
        let recent = cached.last_attempt.is_some_and(|at| {
            at >= request_started || ((fresh || failed_last) && at.elapsed() < self.min_refetch)
        });
        recent.then_some(found)
    }

    fn lookup(&self, kid: &str) -> Option<SigningKey> {
        self.lock().keys.get(kid).cloned()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Cached> {
        self.cached
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Fetch the document; on failure the keys we had stay in use (the
    /// provider being briefly down should not sign everyone out).
    async fn refresh(&self) {
        let attempt = Instant::now();
        let fetched = self.fetch().await;
        let mut cached = self.lock();
        cached.last_attempt = Some(attempt);
        match fetched {
            Ok(keys) => {
                tracing::info!(keys = keys.len(), "fetched the identity provider's JWKS");
                cached.keys = keys;
                cached.fetched_at = Some(attempt);
            }
            Err(error) => tracing::warn!(%error, "fetching the identity provider's JWKS failed"),
        }
    }

    async fn fetch(&self) -> anyhow::Result<HashMap<String, SigningKey>> {
        let response = self.http.get(&self.url).send().await?.error_for_status()?;
        let mut body = Vec::new();
        let mut chunks = response.bytes_stream();
        while let Some(chunk) = chunks.next().await {
            let chunk = chunk?;
            anyhow::ensure!(
                body.len() + chunk.len() <= self.max_bytes,
                "the JWKS document exceeds auth.jwks_max_bytes"
            );
            body.extend_from_slice(&chunk);
        }
        parse_jwks(&body)
    }
}

/// The usable keys of a JWKS document: those with a `kid` that are RSA
/// (RS256) or P-256 (ES256). Keys of other kinds are skipped, not fatal.
pub fn parse_jwks(body: &[u8]) -> anyhow::Result<HashMap<String, SigningKey>> {
    #[derive(serde::Deserialize)]
    struct Document {
        keys: Vec<serde_json::Value>,
    }
    let document: Document = serde_json::from_slice(body)?;
    let keys = document
        .keys
        .into_iter()
        .filter_map(|value| serde_json::from_value::<Jwk>(value).ok())
        .filter_map(|jwk| {
            let kid = jwk.common.key_id.clone()?;
            let algorithm = match &jwk.algorithm {
                AlgorithmParameters::RSA(_) => Algorithm::RS256,
                AlgorithmParameters::EllipticCurve(ec) if ec.curve == EllipticCurve::P256 => {
                    Algorithm::ES256
                }
                _ => return None,
            };
            // A key published for another algorithm is not used for this one.
            let agrees = match jwk.common.key_algorithm {
                None => true,
                Some(KeyAlgorithm::RS256) => algorithm == Algorithm::RS256,
                Some(KeyAlgorithm::ES256) => algorithm == Algorithm::ES256,
                Some(_) => false,
            };
            if !agrees {
                return None;
            }
            let key = DecodingKey::from_jwk(&jwk).ok()?;
            Some((kid, SigningKey { key, algorithm }))
        })
        .take(MAX_KEYS)
        .collect();
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_of_unsupported_kinds_are_skipped() {
        let document = br#"{"keys":[
            {"kty":"EC","crv":"P-256","kid":"ec1","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"},
            {"kty":"oct","kid":"sym","k":"c2VjcmV0"},
            {"kty":"EC","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"},
            {"kty":"weird","kid":"w"}
        ]}"#;
        let keys = parse_jwks(document).unwrap();
        assert_eq!(keys.len(), 1);
        assert_eq!(keys["ec1"].algorithm, Algorithm::ES256);
        assert!(parse_jwks(b"not json").is_err());
    }
}
