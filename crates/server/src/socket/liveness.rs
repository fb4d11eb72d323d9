//! The skeleton every socket loop shares. A loop `select!`s
//! [`Liveness::next`] beside its own sources: it ends the loop on shutdown
//! (1012) or when the peer has been silent past `heartbeat_timeout_secs`
//! (1001), says when to ping (every `heartbeat_interval_secs`), and hands
//! over each received frame, which [`inbound`] sorts into a message to
//! handle or the [`Exit`] that ends the loop.

use std::time::Duration;

use axum::{
    body::Bytes,
    extract::ws::{Message, Utf8Bytes},
};
use futures::{Stream, StreamExt};
use tokio::time::{interval_at, Instant, Interval, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use super::{close_code, close_message, is_too_big};
use crate::AppState;

/// A received frame, or `None` when the stream has ended.
type Frame = Option<Result<Message, axum::Error>>;

/// Shutdown and heartbeat for one socket loop.
pub(crate) struct Liveness {
    closing: CancellationToken,
    heartbeat: Interval,
    last_heard: Instant,
    timeout: Duration,
}

/// What [`Liveness::next`] saw.
pub(crate) enum Wake {
    /// A frame arrived, or the stream ended: the peer was heard either way.
    Frame(Frame),
    /// Time to ping the peer.
    Ping,
    /// The loop must end.
    Exit(Exit),
}

/// How a socket loop ends.
pub(crate) enum Exit {
    /// The peer closed or is gone: nothing more to send.
    PeerGone,
    /// Close with this code and reason.
    Close(u16, Utf8Bytes),
}

impl Exit {
    /// Close with `code` and `reason`.
    pub(crate) fn close(code: u16, reason: impl Into<Utf8Bytes>) -> Self {
        Self::Close(code, reason.into())
    }

    /// The close frame to send, if there is one.
    pub(crate) fn into_message(self) -> Option<Message> {
        match self {
            Self::PeerGone => None,
            Self::Close(code, reason) => Some(close_message(code, reason)),
        }
    }
}

/// A received message worth handling.
pub(crate) enum Inbound {
    Text(Utf8Bytes),
    Binary(Bytes),
    /// A ping or a pong: the WebSocket library answers pings itself, and
    /// both only show the peer is alive.
    Control,
}

/// Sort a received frame: a message, or how the loop ends (an oversized
/// message closes with 1009; an error, the end of the stream or the peer's
/// close frame mean the peer is gone).
pub(crate) fn inbound(frame: Frame) -> Result<Inbound, Exit> {
    match frame {
        Some(Err(ref error)) if is_too_big(error) => {
            Err(Exit::close(close_code::TOO_BIG, "message too big"))
        }
        None | Some(Err(_)) | Some(Ok(Message::Close(_))) => Err(Exit::PeerGone),
        Some(Ok(Message::Text(text))) => Ok(Inbound::Text(text)),
        Some(Ok(Message::Binary(bytes))) => Ok(Inbound::Binary(bytes)),
        Some(Ok(Message::Ping(_) | Message::Pong(_))) => Ok(Inbound::Control),
    }
}

impl Liveness {
    /// Starts now: the first ping is one interval away.
    pub(crate) fn new(state: &AppState) -> Self {
        let config = &state.config;
        let interval = Duration::from_secs(config.heartbeat_interval_secs);
        let mut heartbeat = interval_at(Instant::now() + interval, interval);
        heartbeat.set_missed_tick_behavior(MissedTickBehavior::Delay);
        Self {
            closing: state.lifecycle.close_sockets.clone(),
            heartbeat,
            last_heard: Instant::now(),
            timeout: Duration::from_secs(config.heartbeat_timeout_secs),
        }
    }

    /// How long the peer may stay silent; also how long a write may take.
    pub(crate) fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The next frame from `stream`, ping or reason to stop.
    pub(crate) async fn next<S>(&mut self, stream: &mut S) -> Wake
    where
        S: Stream<Item = Result<Message, axum::Error>> + Unpin,
    {
        tokio::select! {
            () = self.closing.cancelled() => {
                Wake::Exit(Exit::close(close_code::RESTART, "service restart"))
            }
            frame = stream.next() => {
                self.last_heard = Instant::now();
                Wake::Frame(frame)
            }
            _ = self.heartbeat.tick() => {
                if self.last_heard.elapsed() > self.timeout {
                    tracing::info!("heartbeat timeout: dropping socket");
                    Wake::Exit(Exit::close(close_code::GOING_AWAY, "heartbeat timeout"))
                } else {
                    Wake::Ping
                }
            }
        }
    }
}
