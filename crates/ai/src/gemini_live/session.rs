//! The session loop: connect, stream both directions at once, and resume on
//! `goAway` or a dropped connection, so the caller sees one unbroken session.
//!
//! Per connection the two halves in [`pump`](super::pump) run side by side
//! in one `select!`. When one ends, the other is asked to stop at a safe
//! point (between two frames), so no audio chunk or event is ever cut in
//! half; only the chunk of a send that failed or stalled is kept, and
//! replayed after a resumption.

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use tokio::{
    sync::{mpsc, Notify},
    time::timeout,
};
use tokio_tungstenite::Connector;

use super::{
    buffer::{buffer_while, AudioBuffer, Waited},
    connection::{open, setup_json, tls_connector, LiveSocket},
    pump::{
        close_politely, downstream, send_audio, send_tool_result, upstream, DownEnd, DownState,
        ToolsUp, UpEnd, CLOSE_GRACE,
    },
    tools::OpenCalls,
    LiveChannels, LiveConfig, LiveError, LiveEvent, LiveSetup, LiveToolResult,
};

/// First and largest pause between two resumption attempts (doubling).
const BACKOFF_START: Duration = Duration::from_millis(250);
const BACKOFF_MAX: Duration = Duration::from_secs(2);

/// Run one live session set up with `setup`: send `audio_in` chunks (16 kHz
/// mono PCM16 LE) and `tool_results_in` to the model, forward its replies
/// (and its tool calls) to `events_out`, until
///
/// - `audio_in` closes: a clean end (`audioStreamEnd`, then a normal close),
///   `Ok(())`;
/// - `events_out`'s receiver is dropped: the caller is gone, `Ok(())`;
/// - the service ends the session for good (close 1007/1008/1011, an error
///   message, a failed resumption): `Err`, after every event received so
///   far has been forwarded.
///
/// A `goAway`, or a connection that drops or closes normally, is resumed
/// with the latest resumption handle on a new connection; audio that
/// arrives meanwhile is buffered (at most
/// [`LiveConfig::resume_buffer_bytes`], then `audio_in` is no longer read
/// until the new connection is up) and sent after its `setupComplete`. The
/// caller only sees [`LiveEvent::Reconnected`]. Audio sent before the first
/// `setupComplete` is buffered the same way. If `audio_in` closes while a
/// connection is being set up, the session ends at once (`Ok`) and what was
/// buffered is dropped: the caller has gone.
///
/// Without a resumption handle (none received yet), a lost connection ends
/// the session with its error: a fresh session would have forgotten the
/// conversation. The first connection is not retried either; its failure
/// is returned at once, so the caller can tell the user.
#[tracing::instrument(skip_all, fields(model = %config.model))]
pub async fn run_session(
    config: &LiveConfig,
    setup: LiveSetup,
    channels: LiveChannels,
) -> Result<(), LiveError> {
    config.validate()?;
    let LiveChannels {
        mut audio_in,
        tool_results_in,
        events_out,
    } = channels;
    let mut session = Session {
        config,
        connector: tls_connector()?,
        setup,
        handle: None,
        pending: AudioBuffer::new(config.resume_buffer_bytes),
        tool_results_in: Some(tool_results_in),
        open_calls: OpenCalls::default(),
        unsent_result: None,
    };
    session
        .run(&mut audio_in, &events_out)
        .await
        .map_err(|error| error.redacted(&config.api_key))
}

/// State that outlives a connection.
struct Session<'a> {
    config: &'a LiveConfig,
    connector: Connector,
    setup: LiveSetup,
    /// Latest resumable handle from `sessionResumptionUpdate`.
    handle: Option<String>,
    /// Audio received while no connection could take it.
    pending: AudioBuffer,
    /// `None` once the caller closed it.
    tool_results_in: Option<mpsc::Receiver<LiveToolResult>>,
    /// The calls the service waits for, across resumptions.
    open_calls: OpenCalls,
    /// A tool result whose send failed, sent first on the next connection.
    unsent_result: Option<LiveToolResult>,
}

/// How one connection ended.
enum Ended {
    /// The session is over without error (input closed, caller gone).
    Finished,
    /// The session is over with this error.
    Failed(LiveError),
    /// The connection is gone but the session may be resumed.
    Lost {
        error: LiveError,
        /// The connection delivered at least one message after setup, so
        /// it counts as working (resets the attempt count).
        progressed: bool,
    },
}

impl Session<'_> {
    async fn run(
        &mut self,
        audio_in: &mut mpsc::Receiver<Vec<u8>>,
        events_out: &mpsc::Sender<LiveEvent>,
    ) -> Result<(), LiveError> {
        // `Some` while resuming: the attempts made in this outage and why
        // the last connection (or attempt) failed.
        let mut outage: Option<(u32, LiveError)> = None;
        loop {
            if let Some((attempts, last)) = &mut outage {
                if *attempts >= self.config.max_reconnect_attempts {
                    return Err(LiveError::ResumeFailed {
                        attempts: *attempts,
                        reason: last.to_string(),
                    });
                }
                if *attempts > 0 {
                    let pause = BACKOFF_START
                        .saturating_mul(1 << (*attempts - 1).min(8))
                        .min(BACKOFF_MAX);
                    let waited = buffer_while(
                        tokio::time::sleep(pause),
                        &mut self.pending,
                        audio_in,
                        events_out,
                    )
                    .await;
                    if !matches!(waited, Waited::Done(())) {
                        return Ok(());
                    }
                }
                *attempts += 1;
                tracing::info!(attempt = *attempts, reason = %last, "resuming the Gemini Live session");
            }

            let setup = setup_json(self.config, &self.setup, self.handle.as_deref())?;
            let opened = buffer_while(
                open(self.config, &self.connector, &setup),
                &mut self.pending,
                audio_in,
                events_out,
            )
            .await;
            let socket = match opened {
                Waited::Done(Ok(socket)) => socket,
                Waited::Done(Err(error)) => match &mut outage {
                    Some((_, last)) if error.is_transient() => {
                        tracing::warn!(%error, "a Gemini Live resumption attempt failed");
                        *last = error;
                        continue;
                    }
                    _ => return Err(error),
                },
                // The caller ended while we were connecting: nothing to do.
                Waited::InputClosed | Waited::CallerGone => return Ok(()),
            };

            let resumed = outage.is_some();
            if resumed {
                tracing::info!("Gemini Live session resumed");
                if events_out.send(LiveEvent::Reconnected).await.is_err() {
                    return Ok(());
                }
            } else {
                tracing::debug!("Gemini Live session set up");
            }

            match self.stream(socket, audio_in, events_out).await {
                Ended::Finished => return Ok(()),
                Ended::Failed(error) => return Err(error),
                Ended::Lost { error, progressed } => {
                    if self.handle.is_none() || self.config.max_reconnect_attempts == 0 {
                        // Nothing to resume from: a new session would have
                        // forgotten the conversation, so end it here.
                        return Err(error);
                    }
                    outage = match outage {
                        Some((attempts, _)) if !progressed => Some((attempts, error)),
                        _ => Some((0, error)),
                    };
                }
            }
        }
    }

    /// Drive one set-up connection until it ends.
    async fn stream(
        &mut self,
        socket: LiveSocket,
        audio_in: &mut mpsc::Receiver<Vec<u8>>,
        events_out: &mpsc::Sender<LiveEvent>,
    ) -> Ended {
        let send_timeout = self.config.send_timeout;
        let (mut sink, mut source) = socket.split();

        // What arrived while (re)connecting goes first, in order.
        while let Some(chunk) = self.pending.pop_front() {
            if let Err(error) = send_audio(&mut sink, &chunk, send_timeout).await {
                self.pending.push_front(chunk);
                return lost_or_failed(error, false);
            }
        }
        if let Some(result) = &self.unsent_result {
            if let Err(error) = send_tool_result(&mut sink, result, send_timeout).await {
                return lost_or_failed(error, false);
            }
            self.unsent_result = None;
        }

        let stop_up = Notify::new();
        let stop_down = Notify::new();
        let mut in_flight: Option<Vec<u8>> = None;
        let mut down_state = DownState {
            handle: &mut self.handle,
            open_calls: &self.open_calls,
            progressed: false,
        };
        let tools_up = ToolsUp {
            results_in: &mut self.tool_results_in,
            open: &self.open_calls,
            unsent: &mut self.unsent_result,
        };
        let outcome = {
            let up = upstream(
                &mut sink,
                audio_in,
                &mut in_flight,
                tools_up,
                &stop_up,
                send_timeout,
            );
            let down = downstream(&mut source, events_out, &mut down_state, &stop_down);
            tokio::pin!(up, down);
            let first = tokio::select! {
                end = &mut up => First::Up(end),
                end = &mut down => First::Down(end),
                () = events_out.closed() => First::CallerGone,
            };
            match first {
                First::Up(UpEnd::InputClosed) => {
                    // Upstream sent audioStreamEnd and a close; forward what
                    // the service still says until it answers the close.
                    let _ = timeout(CLOSE_GRACE, &mut down).await;
                    Outcome::Finished
                }
                First::Up(UpEnd::Failed(error)) => {
                    stop_down.notify_one();
                    // If the service said why (a close frame), prefer that.
                    match timeout(CLOSE_GRACE, &mut down).await {
                        Ok(DownEnd::Fatal(fatal)) => Outcome::Failed(fatal),
                        Ok(DownEnd::CallerGone) => Outcome::Finished,
                        _ => Outcome::Lost(error),
                    }
                }
                First::Up(UpEnd::Stopped) => Outcome::Finished,
                First::Down(end) => {
                    stop_up.notify_one();
                    // Upstream stops at its next safe point: at most one send.
                    let _ = timeout(send_timeout + CLOSE_GRACE, &mut up).await;
                    match end {
                        DownEnd::CallerGone | DownEnd::Stopped => Outcome::CloseAndFinish,
                        DownEnd::Resume(reason) => Outcome::CloseAndResume(reason),
                        DownEnd::Lost(error) => Outcome::Lost(error),
                        DownEnd::Fatal(error) => Outcome::Failed(error),
                    }
                }
                First::CallerGone => {
                    stop_up.notify_one();
                    stop_down.notify_one();
                    let _ = timeout(send_timeout + CLOSE_GRACE, async {
                        (&mut up).await;
                        (&mut down).await;
                    })
                    .await;
                    Outcome::CloseAndFinish
                }
            }
        };
        let progressed = down_state.progressed;

        // A chunk whose send failed or stalled was not delivered: keep it.
        if let Some(chunk) = in_flight.take() {
            self.pending.push_front(chunk);
        }
        let ended = match outcome {
            Outcome::Finished => Ended::Finished,
            Outcome::Failed(error) => Ended::Failed(error),
            Outcome::Lost(error) => lost_or_failed(error, progressed),
            Outcome::CloseAndFinish => {
                close_politely(&mut sink).await;
                Ended::Finished
            }
            Outcome::CloseAndResume(reason) => {
                close_politely(&mut sink).await;
                Ended::Lost {
                    error: LiveError::Closed {
                        code: 1001,
                        reason: reason.into(),
                    },
                    progressed,
                }
            }
        };
        // Flush what is queued (our close, or the reply to the service's
        // close) so the close handshake completes; not on a dead transport,
        // where it could only stall.
        let dead = matches!(
            &ended,
            Ended::Lost {
                error: LiveError::Closed { code: 1006, .. },
                ..
            }
        );
        if !dead {
            let _ = timeout(CLOSE_GRACE, sink.close()).await;
        }
        ended
    }
}

/// A connection error is resumable only if it is transport trouble.
fn lost_or_failed(error: LiveError, progressed: bool) -> Ended {
    if error.is_transient() {
        Ended::Lost { error, progressed }
    } else {
        Ended::Failed(error)
    }
}

/// Which half of a connection ended first.
enum First {
    Up(UpEnd),
    Down(DownEnd),
    CallerGone,
}

/// What to do with a connection whose halves have stopped.
enum Outcome {
    Finished,
    CloseAndFinish,
    CloseAndResume(&'static str),
    Lost(LiveError),
    Failed(LiveError),
}
