//! Abuse limits for sockets (OWASP WebSocket cheat sheet): sockets per
//! user, message and frame rates per socket and per user, and the Origin
//! allow-list. Rates use `governor`'s GCRA limiters.

use std::{
    collections::HashMap,
    num::NonZeroU32,
    sync::{Arc, Mutex},
};

use axum::http::HeaderMap;
use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, Quota, RateLimiter};
use uuid::Uuid;

use crate::config::Config;

fn per_minute(count: u32) -> Quota {
    Quota::per_minute(NonZeroU32::new(count).unwrap_or(NonZeroU32::MIN))
}

fn per_second(count: u32) -> Quota {
    Quota::per_second(NonZeroU32::new(count).unwrap_or(NonZeroU32::MIN))
}

/// Server-wide limit state.
pub struct Limits {
    max_sockets_per_user: usize,
    sockets: Mutex<HashMap<Uuid, usize>>,
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
            sockets: Mutex::new(HashMap::new()),
            user_messages: RateLimiter::keyed(per_minute(config.messages_per_minute_per_user)),
            socket_messages: per_minute(config.messages_per_minute_per_socket),
            socket_frames: per_second(config.frames_per_second_per_socket),
            strikes_allowed: config.rate_limit_strikes,
            allowed_origins: config.allowed_origins.clone(),
        })
    }

    /// Count a new socket of `user`; `None` when the user already has the maximum.
    pub fn open_socket(self: &Arc<Self>, user: Uuid) -> Option<SocketPermit> {
        let mut sockets = self.sockets.lock().unwrap_or_else(|p| p.into_inner());
        let count = sockets.entry(user).or_insert(0);
        if *count >= self.max_sockets_per_user {
            return None;
        }
        *count += 1;
        Some(SocketPermit {
            limits: self.clone(),
            user,
        })
    }

    /// Open sockets across all users (for metrics and leak tests).
    pub fn open_sockets(&self) -> usize {
        self.sockets
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .sum()
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
        if let Some(count) = sockets.get_mut(&self.user) {
            *count -= 1;
            if *count == 0 {
                sockets.remove(&self.user);
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
        assert!(limits.open_socket(user).is_none());
        assert!(
            limits.open_socket(Uuid::now_v7()).is_some(),
            "other users unaffected"
        );
        drop(first);
        assert!(limits.open_socket(user).is_some());
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
