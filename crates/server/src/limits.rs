//! Abuse limits. Sockets (OWASP WebSocket cheat sheet): sockets per user
//! and in total, message and frame rates per socket and per user, and the
//! Origin allow-list. Identities and passwords: sign-ups and sign-ins per
//! client address and per email, and a bounded number of password hashes at
//! once. Rates use `governor`'s GCRA limiters; the keyed ones forget idle
//! keys on a timer ([`prune_idle_keys`]), so memory follows active clients,
//! not every client ever seen.

use std::{
    collections::HashMap,
    hash::Hash,
    net::IpAddr,
    num::NonZeroU32,
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::http::HeaderMap;
use governor::{
    clock::{Clock, DefaultClock},
    middleware::NoOpMiddleware,
    state::keyed::DefaultKeyedStateStore,
    DefaultDirectRateLimiter, Quota, RateLimiter,
};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::{config::Config, socket::close_code};

fn per_minute(count: u32) -> Quota {
    Quota::per_minute(NonZeroU32::new(count).unwrap_or(NonZeroU32::MIN))
}

fn per_second(count: u32) -> Quota {
    Quota::per_second(NonZeroU32::new(count).unwrap_or(NonZeroU32::MIN))
}

fn per_hour(count: u32) -> Quota {
    Quota::per_hour(NonZeroU32::new(count).unwrap_or(NonZeroU32::MIN))
}

/// A GCRA limiter with one budget per key that says how long a refused
/// caller must wait, and can forget keys whose budget is full again.
pub struct KeyedLimiter<K: Hash + Eq + Clone, C: Clock = DefaultClock> {
    limiter: RateLimiter<K, DefaultKeyedStateStore<K>, C, NoOpMiddleware<C::Instant>>,
}

impl<K: Hash + Eq + Clone> KeyedLimiter<K> {
    /// A limiter on the real clock.
    pub fn new(quota: Quota) -> Self {
        Self::with_clock(quota, DefaultClock::default())
    }
}

impl<K: Hash + Eq + Clone, C: Clock> KeyedLimiter<K, C> {
    /// A limiter on `clock` (a fake one in tests).
    pub fn with_clock(quota: Quota, clock: C) -> Self {
        Self {
            limiter: RateLimiter::new(quota, DefaultKeyedStateStore::default(), clock),
        }
    }

    /// Spend one unit of `key`'s budget; `Err` is how long until one is back.
    pub fn check(&self, key: &K) -> Result<(), Duration> {
        self.limiter
            .check_key(key)
            .map_err(|refused| refused.wait_time_from(self.limiter.clock().now()))
    }

    /// Forget the keys whose budget has refilled completely (a fresh key
    /// would get the same answers) and give the memory back.
    pub fn prune(&self) {
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
    }

    /// Keys remembered now.
    pub fn len(&self) -> usize {
        self.limiter.len()
    }

    /// Whether no key is remembered.
    pub fn is_empty(&self) -> bool {
        self.limiter.is_empty()
    }
}

/// What a throttle on identities or sign-ins is counting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthAction {
    /// `POST /api/auth/anonymous`.
    Anonymous,
    /// `POST /auth/register`.
    Register,
    /// `POST /auth/login`.
    Login,
}

/// Open sockets, in total and per user.
#[derive(Default)]
struct SocketCounts {
    total: usize,
    per_user: HashMap<Uuid, usize>,
}

/// Why a socket may not open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SocketRefused {
    /// The server holds `max_connections` sockets: try again later.
    ServerFull,
    /// The user holds `max_sockets_per_user` sockets.
    UserFull,
}

impl SocketRefused {
    /// The close code and reason: 1013 (retry later) when the server is
    /// full, 1008 when this user has too many.
    pub fn close(self) -> (u16, &'static str) {
        match self {
            SocketRefused::ServerFull => (close_code::TRY_AGAIN_LATER, "try again later"),
            SocketRefused::UserFull => (close_code::POLICY, "Too many connections"),
        }
    }
}

/// No password hashing slot freed up within `auth.password_hash_wait_ms`.
#[derive(Debug, thiserror::Error)]
#[error("too many password checks at once")]
pub struct Overloaded;

/// The right to run one password hash; dropping it frees the slot.
pub struct PasswordSlot(#[allow(dead_code)] OwnedSemaphorePermit);

/// Server-wide limit state.
pub struct Limits {
    max_sockets_per_user: usize,
    max_connections: usize,
    sockets: Mutex<SocketCounts>,
    user_messages: KeyedLimiter<Uuid>,
    analytics_batches: KeyedLimiter<Uuid>,
    shares: KeyedLimiter<Uuid>,
    summaries: KeyedLimiter<Uuid>,
    shared_reads: KeyedLimiter<IpAddr>,
    socket_messages: Quota,
    socket_frames: Quota,
    socket_resumes: Quota,
    strikes_allowed: u32,
    allowed_origins: Vec<String>,
    anonymous_per_ip: KeyedLimiter<IpAddr>,
    registrations_per_ip: KeyedLimiter<IpAddr>,
    logins_per_ip: KeyedLimiter<IpAddr>,
    logins_per_email: KeyedLimiter<String>,
    password_slots: Arc<Semaphore>,
    password_wait: Duration,
    /// Told of every socket closed (cluster mode counts sockets across nodes).
    on_socket_closed: std::sync::OnceLock<Box<dyn Fn(Uuid) + Send + Sync>>,
}

/// Why a socket or message is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Allowed,
    /// Refuse this one; the client is told `rate_limited`.
    Limited,
    /// Too many refusals in a row: close the socket.
    Abusive,
}

impl Limits {
    pub fn new(config: &Config) -> Arc<Self> {
        let auth = &config.auth;
        Arc::new(Self {
            max_sockets_per_user: config.max_sockets_per_user,
            max_connections: config.max_connections,
            sockets: Mutex::new(SocketCounts::default()),
            user_messages: KeyedLimiter::new(per_minute(config.messages_per_minute_per_user)),
            analytics_batches: KeyedLimiter::new(per_minute(
                config.analytics_batches_per_minute_per_user,
            )),
            shares: KeyedLimiter::new(per_hour(config.shares_per_hour_per_user)),
            summaries: KeyedLimiter::new(per_hour(config.summaries.per_hour_per_user)),
            shared_reads: KeyedLimiter::new(per_minute(config.shared_reads_per_minute_per_ip)),
            socket_messages: per_minute(config.messages_per_minute_per_socket),
            socket_frames: per_second(config.frames_per_second_per_socket),
            socket_resumes: per_minute(config.resumes_per_minute_per_socket),
            strikes_allowed: config.rate_limit_strikes,
            allowed_origins: config.allowed_origins.clone(),
            anonymous_per_ip: KeyedLimiter::new(per_hour(auth.anonymous_per_hour_per_ip)),
            registrations_per_ip: KeyedLimiter::new(per_hour(auth.registrations_per_hour_per_ip)),
            logins_per_ip: KeyedLimiter::new(per_minute(auth.logins_per_minute_per_ip)),
            logins_per_email: KeyedLimiter::new(per_minute(auth.logins_per_minute_per_email)),
            password_slots: Arc::new(Semaphore::new(auth.password_hash_concurrency.max(1))),
            password_wait: Duration::from_millis(auth.password_hash_wait_ms),
            on_socket_closed: std::sync::OnceLock::new(),
        })
    }

    /// Call `hook` with the user of every socket closed from now on (once per server).
    pub fn on_socket_closed(&self, hook: Box<dyn Fn(Uuid) + Send + Sync>) {
        let _ = self.on_socket_closed.set(hook);
    }

    /// Sockets `user` holds on this node.
    pub fn user_sockets(&self, user: Uuid) -> usize {
        let sockets = self.sockets.lock().unwrap_or_else(|p| p.into_inner());
        sockets.per_user.get(&user).copied().unwrap_or(0)
    }

    /// Every user holding a socket on this node.
    pub fn users_with_sockets(&self) -> Vec<Uuid> {
        let sockets = self.sockets.lock().unwrap_or_else(|p| p.into_inner());
        sockets.per_user.keys().copied().collect()
    }

    /// `max_sockets_per_user`.
    pub fn max_sockets_per_user(&self) -> usize {
        self.max_sockets_per_user
    }

    /// Count a new socket of `user`, unless the server or the user already
    /// has the maximum.
    pub fn open_socket(self: &Arc<Self>, user: Uuid) -> Result<SocketPermit, SocketRefused> {
        let mut sockets = self.sockets.lock().unwrap_or_else(|p| p.into_inner());
        if sockets.total >= self.max_connections {
            return Err(SocketRefused::ServerFull);
        }
        let count = sockets.per_user.entry(user).or_insert(0);
        if *count >= self.max_sockets_per_user {
            return Err(SocketRefused::UserFull);
        }
        *count += 1;
        sockets.total += 1;
        Ok(SocketPermit {
            limits: self.clone(),
            user,
        })
    }

    /// Open sockets across all users (for metrics and leak tests).
    pub fn open_sockets(&self) -> usize {
        self.sockets.lock().unwrap_or_else(|p| p.into_inner()).total
    }

    /// Whether `user` may send another message now (shared by all transports).
    pub fn allow_user_message(&self, user: Uuid) -> bool {
        self.user_messages.check(&user).is_ok()
    }

    /// Spend one of `user`'s analytics batches; `Err` is how long until the next.
    pub fn check_analytics_batch(&self, user: Uuid) -> Result<(), Duration> {
        self.analytics_batches.check(&user)
    }

    /// Spend one of `user`'s share links or forks; `Err` is how long until the next.
    pub fn check_share(&self, user: Uuid) -> Result<(), Duration> {
        self.shares.check(&user)
    }

    /// Spend one of `user`'s summary requests; `Err` is how long until the next.
    pub fn check_summary(&self, user: Uuid) -> Result<(), Duration> {
        self.summaries.check(&user)
    }

    /// Spend one shared-conversation read of `client` (a rate key).
    pub fn check_shared_read(&self, client: IpAddr) -> Result<(), Duration> {
        self.shared_reads.check(&client)
    }

    /// Spend one of `client`'s budget for `action`; `Err` is how long until
    /// it may try again. `client` is a [`crate::client_ip::ClientIp::rate_key`].
    pub fn check_auth(&self, action: AuthAction, client: IpAddr) -> Result<(), Duration> {
        let limiter = match action {
            AuthAction::Anonymous => &self.anonymous_per_ip,
            AuthAction::Register => &self.registrations_per_ip,
            AuthAction::Login => &self.logins_per_ip,
        };
        limiter.check(&client)
    }

    /// Spend one sign-in attempt on `email` (normalized), from any address.
    pub fn check_login_email(&self, email: &str) -> Result<(), Duration> {
        self.logins_per_email.check(&email.to_owned())
    }

    /// A slot to hash a password in, waiting at most
    /// `auth.password_hash_wait_ms` for one: argon2 takes a core and ~19 MiB
    /// per hash, so only as many run at once as there are slots.
    pub async fn password_slot(&self) -> Result<PasswordSlot, Overloaded> {
        let acquire = self.password_slots.clone().acquire_owned();
        match tokio::time::timeout(self.password_wait, acquire).await {
            Ok(Ok(permit)) => Ok(PasswordSlot(permit)),
            // Timed out, or the semaphore was closed (never done).
            _ => Err(Overloaded),
        }
    }

    /// Forget idle keys in every keyed limiter.
    pub fn prune_idle(&self) {
        self.user_messages.prune();
        self.analytics_batches.prune();
        self.shares.prune();
        self.summaries.prune();
        self.shared_reads.prune();
        self.anonymous_per_ip.prune();
        self.registrations_per_ip.prune();
        self.logins_per_ip.prune();
        self.logins_per_email.prune();
    }

    /// Keys remembered across the keyed limiters (for tests).
    pub fn tracked_keys(&self) -> usize {
        self.user_messages.len()
            + self.analytics_batches.len()
            + self.shares.len()
            + self.summaries.len()
            + self.shared_reads.len()
            + self.anonymous_per_ip.len()
            + self.registrations_per_ip.len()
            + self.logins_per_ip.len()
            + self.logins_per_email.len()
    }

    /// Fresh per-socket limiters.
    pub fn for_socket(&self) -> SocketLimits {
        SocketLimits {
            messages: RateLimiter::direct(self.socket_messages),
            frames: RateLimiter::direct(self.socket_frames),
            resumes: RateLimiter::direct(self.socket_resumes),
            frame_strikes: 0,
            message_strikes: 0,
            strikes_allowed: self.strikes_allowed,
        }
    }

    /// Browsers send `Origin`; it must be our own host or allow-listed.
    /// Requests without one (native clients) are judged by their token alone.
    pub fn origin_allowed(&self, headers: &HeaderMap) -> bool {
        let Some(origin) = headers.get("origin").and_then(|v| v.to_str().ok()) else {
            return true;
        };
        if self
            .allowed_origins
            .iter()
            .any(|allowed| allowed == "*" || allowed == origin)
        {
            return true;
        }
        let host = headers.get("host").and_then(|v| v.to_str().ok());
        let origin_host = origin.split_once("://").map(|(_, rest)| rest);
        matches!((host, origin_host), (Some(host), Some(origin_host)) if host.eq_ignore_ascii_case(origin_host))
    }
}

/// Run [`Limits::prune_idle`] every `every` until `stop` fires.
pub async fn prune_idle_keys(limits: Arc<Limits>, every: Duration, stop: CancellationToken) {
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticks.tick().await;
    loop {
        tokio::select! {
            () = stop.cancelled() => break,
            _ = ticks.tick() => limits.prune_idle(),
        }
    }
}

/// One counted socket; dropping it frees the slot.
pub struct SocketPermit {
    limits: Arc<Limits>,
    user: Uuid,
}

impl Drop for SocketPermit {
    fn drop(&mut self) {
        {
            let mut sockets = self
                .limits
                .sockets
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            sockets.total = sockets.total.saturating_sub(1);
            if let Some(count) = sockets.per_user.get_mut(&self.user) {
                *count -= 1;
                if *count == 0 {
                    sockets.per_user.remove(&self.user);
                }
            }
        }
        if let Some(hook) = self.limits.on_socket_closed.get() {
            hook(self.user);
        }
    }
}

/// The limiters of one socket.
pub struct SocketLimits {
    messages: DefaultDirectRateLimiter,
    frames: DefaultDirectRateLimiter,
    /// Each `resume` may read a conversation's history back from storage.
    resumes: DefaultDirectRateLimiter,
    /// Refusals in a row, counted apart for frames and messages so that an
    /// allowed frame carrying a refused message does not reset the count.
    frame_strikes: u32,
    message_strikes: u32,
    strikes_allowed: u32,
}

impl SocketLimits {
    fn judge(strikes: &mut u32, strikes_allowed: u32, allowed: bool) -> Verdict {
        if allowed {
            *strikes = 0;
            return Verdict::Allowed;
        }
        *strikes += 1;
        if *strikes >= strikes_allowed {
            Verdict::Abusive
        } else {
            Verdict::Limited
        }
    }

    /// Any inbound frame.
    pub fn frame(&mut self) -> Verdict {
        let allowed = self.frames.check().is_ok();
        Self::judge(&mut self.frame_strikes, self.strikes_allowed, allowed)
    }

    /// A `resume` request; refusals count as message strikes.
    pub fn resume(&mut self) -> Verdict {
        let allowed = self.resumes.check().is_ok();
        Self::judge(&mut self.message_strikes, self.strikes_allowed, allowed)
    }

    /// A `text` message, against this socket's budget (the user's budget is
    /// paid by the turn itself, whatever the transport).
    pub fn message(&mut self) -> Verdict {
        let allowed = self.messages.check().is_ok();
        Self::judge(&mut self.message_strikes, self.strikes_allowed, allowed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(tweak: impl FnOnce(&mut Config)) -> Arc<Limits> {
        let mut config = Config::default();
        tweak(&mut config);
        Limits::new(&config)
    }

    #[test]
    fn sockets_per_user_are_capped_and_released() {
        let limits = limits(|c| c.max_sockets_per_user = 2);
        let user = Uuid::now_v7();
        let first = limits.open_socket(user).unwrap();
        let _second = limits.open_socket(user).unwrap();
        assert_eq!(
            limits.open_socket(user).err(),
            Some(SocketRefused::UserFull)
        );
        assert!(
            limits.open_socket(Uuid::now_v7()).is_ok(),
            "other users unaffected"
        );
        drop(first);
        assert!(limits.open_socket(user).is_ok());
    }

    #[test]
    fn sockets_beyond_the_server_maximum_are_refused_with_try_again_later() {
        let limits = limits(|c| c.max_connections = 2);
        let first = limits.open_socket(Uuid::now_v7()).unwrap();
        let _second = limits.open_socket(Uuid::now_v7()).unwrap();
        let refused = limits.open_socket(Uuid::now_v7()).err().unwrap();
        assert_eq!(refused, SocketRefused::ServerFull);
        assert_eq!(refused.close(), (1013, "try again later"));
        assert_eq!(limits.open_sockets(), 2);
        drop(first);
        assert!(limits.open_socket(Uuid::now_v7()).is_ok());
    }

    #[test]
    fn keyed_limiters_forget_keys_once_their_budget_is_full_again() {
        let clock = governor::clock::FakeRelativeClock::default();
        let limiter = KeyedLimiter::with_clock(per_minute(2), clock.clone());
        for key in 0..100 {
            limiter.check(&key).unwrap();
        }
        limiter.check(&7).unwrap();
        assert!(limiter.check(&7).is_err(), "key 7 spent its budget");
        limiter.prune();
        assert_eq!(limiter.len(), 100, "recently used keys are kept");
        // A key is forgotten one refill interval (30 s here) after its
        // budget is full again.
        clock.advance(Duration::from_secs(61));
        limiter.prune();
        assert_eq!(limiter.len(), 1, "only key 7 is still short of budget");
        clock.advance(Duration::from_secs(30));
        limiter.prune();
        assert!(limiter.is_empty());
    }

    #[test]
    fn a_refused_check_says_how_long_to_wait() {
        let clock = governor::clock::FakeRelativeClock::default();
        let limiter = KeyedLimiter::with_clock(per_hour(2), clock);
        limiter.check(&"a").unwrap();
        limiter.check(&"a").unwrap();
        let wait = limiter.check(&"a").unwrap_err();
        assert_eq!(wait, Duration::from_secs(30 * 60));
        assert!(limiter.check(&"b").is_ok(), "other keys unaffected");
    }

    #[test]
    fn sign_in_throttles_count_per_address_and_per_email() {
        let limits = limits(|c| {
            c.auth.logins_per_minute_per_ip = 2;
            c.auth.logins_per_minute_per_email = 3;
        });
        let (one, two): (IpAddr, IpAddr) =
            ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        assert!(limits.check_auth(AuthAction::Login, one).is_ok());
        assert!(limits.check_auth(AuthAction::Login, one).is_ok());
        assert!(limits.check_auth(AuthAction::Login, one).is_err());
        assert!(
            limits.check_auth(AuthAction::Register, one).is_ok(),
            "budgets are per action"
        );
        assert!(limits.check_auth(AuthAction::Login, two).is_ok());
        for _ in 0..3 {
            assert!(limits.check_login_email("ada@example.com").is_ok());
        }
        assert!(limits.check_login_email("ada@example.com").is_err());
        assert!(limits.tracked_keys() > 0);
        limits.prune_idle();
        assert!(limits.tracked_keys() > 0, "recent keys survive a prune");
    }

    #[tokio::test]
    async fn password_slots_are_bounded_and_a_full_house_answers_overloaded() {
        let limits = limits(|c| {
            c.auth.password_hash_concurrency = 1;
            c.auth.password_hash_wait_ms = 10;
        });
        let held = limits.password_slot().await.unwrap();
        assert!(limits.password_slot().await.is_err());
        drop(held);
        assert!(limits.password_slot().await.is_ok());
    }

    #[test]
    fn message_bursts_are_limited_then_abusive() {
        let limits = limits(|c| {
            c.messages_per_minute_per_socket = 2;
            c.rate_limit_strikes = 2;
        });
        let mut socket = limits.for_socket();
        assert_eq!(socket.message(), Verdict::Allowed);
        assert_eq!(socket.message(), Verdict::Allowed);
        assert_eq!(socket.message(), Verdict::Limited);
        assert_eq!(socket.message(), Verdict::Abusive);
    }

    #[test]
    fn origin_must_be_same_host_or_listed() {
        let limits = limits(|c| c.allowed_origins = vec!["https://app.example.com".into()]);
        let headers = |origin: Option<&str>| {
            let mut headers = HeaderMap::new();
            headers.insert("host", "chat.example.com".parse().unwrap());
            if let Some(origin) = origin {
                headers.insert("origin", origin.parse().unwrap());
            }
            headers
        };
        assert!(limits.origin_allowed(&headers(None)));
        assert!(limits.origin_allowed(&headers(Some("https://chat.example.com"))));
        assert!(limits.origin_allowed(&headers(Some("https://app.example.com"))));
        assert!(!limits.origin_allowed(&headers(Some("https://evil.example.com"))));
        assert!(!limits.origin_allowed(&headers(Some("https://app.example.com.evil.io"))));
    }
}
