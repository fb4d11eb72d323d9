//! What every socket shares, whatever it carries (the JSON chat sockets,
//! the binary voice socket): the checks and limits applied before the
//! upgrade, serving an admitted socket or closing a refused one, the close
//! codes, and the [`Liveness`] skeleton of every socket loop (shutdown,
//! heartbeat, reading frames, how it ends).
//!
//! Refusals are reported the way seed 004 specifies: the socket is
//! accepted, then closed with a code and a reason, so browsers (which
//! cannot read a refused handshake) see why.

mod liveness;

use std::{future::Future, time::Duration};

use axum::{
    extract::ws::{
        rejection::WebSocketUpgradeRejection, CloseFrame, Message, Utf8Bytes, WebSocket,
        WebSocketUpgrade,
    },
    http::HeaderMap,
    response::Response,
};

pub(crate) use liveness::{inbound, Exit, Inbound, Liveness, Wake};

use crate::{error::AppError, AppState};

/// The close codes this server uses (RFC 6455 section 7.4.1).
pub mod close_code {
    /// Normal closure.
    pub const NORMAL: u16 = 1000;
    /// The endpoint is going away (used for heartbeat time-outs).
    pub const GOING_AWAY: u16 = 1001;
    /// Policy violation: authentication or ownership failures, abuse.
    pub const POLICY: u16 = 1008;
    /// A message larger than `max_frame_bytes`.
    pub const TOO_BIG: u16 = 1009;
    /// The server cannot serve this (a missing engine, a failed session).
    pub const INTERNAL_ERROR: u16 = 1011;
    /// Service restart: reconnect (to another node) and resume.
    pub const RESTART: u16 = 1012;
    /// Try again later: the client fell too far behind its conversation.
    pub const TRY_AGAIN_LATER: u16 = 1013;
}

/// How long a refused or finished socket waits for the peer's close.
const CLOSE_WAIT: Duration = Duration::from_secs(2);

/// Checks shared by every socket before the upgrade (a WebSocket request,
/// an allowed Origin) and the frame and buffer limits; `Err` is the HTTP
/// error that refuses it.
pub(crate) fn prepare_upgrade(
    state: &AppState,
    headers: &HeaderMap,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<WebSocketUpgrade, AppError> {
    let upgrade = match upgrade {
        Ok(upgrade) => upgrade,
        Err(rejection) => {
            return Err(AppError::bad_request(
                "websocket_required",
                rejection.body_text(),
            ));
        }
    };
    if !state.limits.origin_allowed(headers) {
        return Err(AppError::Forbidden {
            code: "origin_not_allowed",
            message: "this Origin may not open sockets here".into(),
        });
    }
    let config = &state.config;
    let upgrade = upgrade
        .max_message_size(config.max_frame_bytes)
        .max_frame_size(config.max_frame_bytes)
        .read_buffer_size(config.socket_read_buffer_bytes)
        .write_buffer_size(0)
        .max_write_buffer_size(config.socket_max_write_buffer_bytes);
    Ok(upgrade)
}

/// Complete the upgrade: `serve` the socket if it was `admitted`, else close
/// it with the refusal's code and reason. The socket's task is tracked, so
/// shutdown waits for it.
pub(crate) fn serve<A, S, F>(
    state: AppState,
    upgrade: WebSocketUpgrade,
    admitted: Result<A, (u16, &'static str)>,
    serve: S,
) -> Response
where
    A: Send + 'static,
    S: FnOnce(WebSocket, AppState, A) -> F + Send + 'static,
    F: Future<Output = ()> + Send + 'static,
{
    let sockets = state.lifecycle.sockets.clone();
    upgrade.on_upgrade(move |socket| {
        sockets.track_future(async move {
            match admitted {
                Ok(admitted) => serve(socket, state, admitted).await,
                Err((code, reason)) => close_with(socket, code, reason).await,
            }
        })
    })
}

/// A close frame with `code` and `reason`.
pub(crate) fn close_message(code: u16, reason: impl Into<Utf8Bytes>) -> Message {
    Message::Close(Some(CloseFrame {
        code,
        reason: reason.into(),
    }))
}

/// Send a close frame and give the peer a moment to answer it.
pub(crate) async fn close_with(mut socket: WebSocket, code: u16, reason: &str) {
    if socket.send(close_message(code, reason)).await.is_err() {
        return;
    }
    let drain = async { while let Some(Ok(_)) = socket.recv().await {} };
    let _ = tokio::time::timeout(CLOSE_WAIT, drain).await;
}

/// Whether a receive error is tungstenite refusing an oversized message.
pub(crate) fn is_too_big(error: &axum::Error) -> bool {
    std::error::Error::source(error)
        .and_then(|inner| inner.downcast_ref::<tungstenite::Error>())
        .is_some_and(|e| matches!(e, tungstenite::Error::Capacity(_)))
}
