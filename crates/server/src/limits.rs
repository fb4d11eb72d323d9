//! Abuse limits for sockets (OWASP WebSocket cheat sheet): sockets per
//! user and in total, message and frame rates per socket and per user, and
//! the Origin allow-list. Rates use `governor`'s GCRA limiters.

use std::{
    collections::HashMap,
    num::NonZeroU32,
    sync::{Arc, Mutex},
};

use axum::http::HeaderMap;
use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, Quota, RateLimiter};
use uuid::Uuid;

use crate::{config::Config, ws::close_code};

fn per_minute(count: u32) -> Quota {
    Quota::per_minute(NonZeroU32::new(count).unwrap_or(NonZeroU32::MIN))
}

fn per_second(count: u32) -> Quota {
    Quota::per_second(NonZeroU32::new(count).unwrap_or(NonZeroU32::MIN))
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

/// Server-wide limit state.
pub struct Limits {
    max_sockets_per_user: usize,
    max_connections: usize,
    sockets: Mutex<SocketCounts>,
    user_messages: DefaultKeyedRateLimiter<Uuid>,
    socket_messages: Quota,
    socket_frames: Quota,
    strikes_allowed: u32,
    allowed_origins: Vec<String>,
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
        Arc::new(Self {
            max_sockets_per_user: config.max_sockets_per_user,
            max_connections: config.max_connections,
            sockets: Mutex::new(SocketCounts::default()),
            user_messages: RateLimiter::keyed(per_minute(config.messages_per_minute_per_user)),
            socket_messages: per_minute(config.messages_per_minute_per_socket),
            socket_frames: per_second(config.frames_per_second_per_socket),
            strikes_allowed: config.rate_limit_strikes,
            allowed_origins: config.allowed_origins.clone(),
        })
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
        self.user_messages.check_key(&user).is_ok()
    }

    /// Fresh per-socket limiters.
    pub fn for_socket(&self) -> SocketLimits {
        SocketLimits {
            messages: RateLimiter::direct(self.socket_messages),
            frames: RateLimiter::direct(self.socket_frames),
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

/// One counted socket; dropping it frees the slot.
pub struct SocketPermit {
    limits: Arc<Limits>,
    user: Uuid,
}

impl Drop for SocketPermit {
    fn drop(&mut self) {
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
}

/// The limiters of one socket.
pub struct SocketLimits {
    messages: DefaultDirectRateLimiter,
    frames: DefaultDirectRateLimiter,
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

    /// A `text` message, against this socket's and its user's budgets.
    pub fn message(&mut self, limits: &Limits, user: Uuid) -> Verdict {
        let allowed = self.messages.check().is_ok() && limits.allow_user_message(user);
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
    fn message_bursts_are_limited_then_abusive() {
        let limits = limits(|c| {
            c.messages_per_minute_per_socket = 2;
            c.rate_limit_strikes = 2;
        });
        let user = Uuid::now_v7();
        let mut socket = limits.for_socket();
        assert_eq!(socket.message(&limits, user), Verdict::Allowed);
        assert_eq!(socket.message(&limits, user), Verdict::Allowed);
        assert_eq!(socket.message(&limits, user), Verdict::Limited);
        assert_eq!(socket.message(&limits, user), Verdict::Abusive);
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
