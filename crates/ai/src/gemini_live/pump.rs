//! The two halves of one connection. *Upstream* reads the caller's audio
//! and tool results and writes `realtimeInput` and `toolResponse` frames;
//! *downstream* reads server frames, keeps the resumption handle and the
//! open tool calls, and forwards [`LiveEvent`]s in order. Each
//! stops only at a safe point when asked (see [`session`](super::session)).

use std::time::Duration;

use base64::Engine as _;
use futures::{
    stream::{SplitSink, SplitStream},
    SinkExt, StreamExt,
};
use tokio::{
    sync::{mpsc, Notify},
    time::{timeout, Instant},
};
use tokio_tungstenite::tungstenite::{
    protocol::{frame::coding::CloseCode, CloseFrame},
    Message,
};

use super::{
    connection::{closed_error, server_error, LiveSocket},
    tools::OpenCalls,
    wire::{self, ServerContent, ServerMessage, BASE64},
    LiveError, LiveEvent, LiveToolResult,
};

/// How long we wait, after ending a connection ourselves, for the service's
/// close reply (and the last events it sends before it).
pub(super) const CLOSE_GRACE: Duration = Duration::from_secs(2);

/// How long before `goAway`'s deadline we leave the old connection, to have
/// the new one ready before the service cuts the old one.
const GO_AWAY_MARGIN: Duration = Duration::from_secs(1);

pub(super) enum UpEnd {
    /// `audio_in` closed; `audioStreamEnd` and a close frame were sent.
    InputClosed,
    /// A frame could not be written.
    Failed(LiveError),
    /// Asked to stop.
    Stopped,
}

/// Tool results on their way up, and what upstream needs to vet them.
pub(super) struct ToolsUp<'a> {
    /// `None` once the caller closed it.
    pub results_in: &'a mut Option<mpsc::Receiver<LiveToolResult>>,
    pub open: &'a OpenCalls,
    /// A result whose send failed or stalled, to send after a resumption.
    pub unsent: &'a mut Option<LiveToolResult>,
}

/// Wait for the next tool result, or forever once the caller closed them.
async fn next_result(
    results_in: &mut Option<mpsc::Receiver<LiveToolResult>>,
) -> Option<LiveToolResult> {
    match results_in {
        Some(receiver) => receiver.recv().await,
        None => std::future::pending().await,
    }
}

/// Read the caller's audio and tool results and send them as
/// `realtimeInput` and `toolResponse` frames.
pub(super) async fn upstream(
    sink: &mut SplitSink<LiveSocket, Message>,
    audio_in: &mut mpsc::Receiver<Vec<u8>>,
    in_flight: &mut Option<Vec<u8>>,
    tools: ToolsUp<'_>,
    stop: &Notify,
    send_timeout: Duration,
) -> UpEnd {
    loop {
        let input = tokio::select! {
            biased;
            () = stop.notified() => return UpEnd::Stopped,
            result = next_result(tools.results_in) => Err(result),
            chunk = audio_in.recv() => Ok(chunk),
        };
        let chunk = match input {
            Ok(chunk) => chunk,
            Err(None) => {
                *tools.results_in = None;
                continue;
            }
            Err(Some(result)) => {
                if !tools.open.answer(&result) {
                    tracing::debug!(
                        "dropping the result of a tool call Gemini Live no longer waits for"
                    );
                    continue;
                }
                let result = tools.unsent.insert(result);
                if let Err(error) = send_tool_result(sink, result, send_timeout).await {
                    return UpEnd::Failed(error);
                }
                *tools.unsent = None;
                continue;
            }
        };
        match chunk {
            Some(chunk) if chunk.is_empty() => {}
            Some(chunk) => {
                let chunk = in_flight.insert(chunk);
                if let Err(error) = send_audio(sink, chunk, send_timeout).await {
                    return UpEnd::Failed(error);
                }
                *in_flight = None;
            }
            None => {
                // A polite end: flush the service's turn detection, then
                // close normally. Failures here change nothing.
                if let Ok(end) = wire::audio_stream_end_message() {
                    let _ = send_text(sink, end, send_timeout).await;
                }
                close_politely(sink).await;
                return UpEnd::InputClosed;
            }
        }
    }
}

/// Per-connection state downstream updates.
pub(super) struct DownState<'a> {
    pub handle: &'a mut Option<String>,
    pub open_calls: &'a OpenCalls,
    pub progressed: bool,
}

pub(super) enum DownEnd {
    /// `events_out` is closed.
    CallerGone,
    /// Asked to stop.
    Stopped,
    /// `goAway` time is (almost) up: leave this connection and resume.
    Resume(&'static str),
    /// The connection closed or broke in a resumable way.
    Lost(LiveError),
    /// The service ended the session for good.
    Fatal(LiveError),
}

/// Read server frames and forward their events, in order.
pub(super) async fn downstream(
    source: &mut SplitStream<LiveSocket>,
    events_out: &mpsc::Sender<LiveEvent>,
    state: &mut DownState<'_>,
    stop: &Notify,
) -> DownEnd {
    // Set by goAway (only when we have a handle to resume with).
    let mut leave_at: Option<Instant> = None;
    loop {
        let next = tokio::select! {
            biased;
            () = stop.notified() => return DownEnd::Stopped,
            () = sleep_until(leave_at) => return DownEnd::Resume("goAway: the connection is about to end"),
            next = source.next() => next,
        };
        let bytes = match next {
            Some(Ok(Message::Text(text))) => text.as_bytes().to_vec(),
            Some(Ok(Message::Binary(bytes))) => bytes.to_vec(),
            Some(Ok(Message::Close(frame))) => {
                let error = closed_error(frame);
                tracing::info!(%error, "Gemini Live closed the connection");
                return if error.is_transient() {
                    DownEnd::Lost(error)
                } else {
                    DownEnd::Fatal(error)
                };
            }
            Some(Ok(_)) => continue,
            Some(Err(error)) => {
                return DownEnd::Lost(LiveError::Closed {
                    code: 1006,
                    reason: format!("connection lost: {error}"),
                })
            }
            None => {
                return DownEnd::Lost(LiveError::Closed {
                    code: 1006,
                    reason: "connection closed without a close frame".into(),
                })
            }
        };
        let message = match ServerMessage::parse(&bytes) {
            Ok(message) => message,
            Err(error) => {
                tracing::warn!(kind = ?error.classify(), "skipping a Gemini Live frame that is not a JSON object");
                continue;
            }
        };
        state.progressed = true;
        if !message.ignored.is_empty() {
            tracing::debug!(fields = ?message.ignored, "ignoring Gemini Live message fields");
        }
        if let Some(error) = message.error {
            return DownEnd::Fatal(server_error(error));
        }
        if let Some(update) = message.session_resumption_update {
            match update.new_handle.filter(|handle| !handle.is_empty()) {
                Some(handle) if update.resumable.unwrap_or(false) => {
                    tracing::debug!("Gemini Live resumption handle updated");
                    *state.handle = Some(handle);
                }
                // Not resumable right now (mid-generation): keep the last one.
                _ => {}
            }
        }
        let mut events = message
            .server_content
            .map(content_events)
            .unwrap_or_default();
        if let Some(cancellation) = message.tool_call_cancellation {
            let ids = state.open_calls.cancelled(&cancellation.ids);
            if !ids.is_empty() {
                events.push(LiveEvent::ToolCallsCancelled(ids));
            }
        }
        if let Some(tool_call) = message.tool_call {
            let calls = tool_call.into_calls();
            if !calls.is_empty() {
                state.open_calls.opened(&calls);
                events.push(LiveEvent::ToolCalls(calls));
            }
        }
        if let Some(usage) = message.usage_metadata {
            events.push(LiveEvent::Usage(usage));
        }
        for event in events {
            if events_out.send(event).await.is_err() {
                return DownEnd::CallerGone;
            }
        }
        if let Some(go_away) = message.go_away {
            let time_left = go_away.time_left();
            tracing::info!(?time_left, "Gemini Live sent goAway");
            if state.handle.is_some() {
                // Keep using this connection until shortly before its end
                // (or until the service closes it), then resume.
                let left = time_left.unwrap_or_default().saturating_sub(GO_AWAY_MARGIN);
                leave_at = Some(Instant::now() + left);
            }
        }
    }
}

/// Sleep until `deadline`, or forever without one.
async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// The events of one `serverContent`, in the order the caller should act on
/// them: an interruption first (stop playback before anything new plays),
/// then what the user said, the model's audio, its transcript, and the
/// turn's end markers.
pub(super) fn content_events(content: ServerContent) -> Vec<LiveEvent> {
    let mut events = Vec::new();
    if content.interrupted.unwrap_or(false) {
        events.push(LiveEvent::Interrupted);
    }
    if let Some(text) = content.input_transcription.and_then(|t| t.text) {
        if !text.is_empty() {
            events.push(LiveEvent::InputTranscript(text));
        }
    }
    for part in content
        .model_turn
        .map(|turn| turn.parts)
        .unwrap_or_default()
    {
        let Some(inline) = part.inline_data else {
            // Text parts (e.g. thoughts) are not spoken; the transcript
            // events carry what the model says.
            continue;
        };
        let mime = inline.mime_type.unwrap_or_default();
        if !mime.starts_with("audio/pcm") {
            tracing::debug!(%mime, "ignoring non-audio inline data from Gemini Live");
            continue;
        }
        if mime.contains("rate=") && !mime.contains(&format!("rate={}", wire::OUTPUT_AUDIO_RATE)) {
            tracing::warn!(%mime, "Gemini Live audio is not at 24 kHz; forwarding it as is");
        }
        match BASE64.decode(inline.data.unwrap_or_default()) {
            Ok(pcm) if pcm.is_empty() => {}
            Ok(pcm) => events.push(LiveEvent::Audio(pcm)),
            Err(error) => {
                tracing::warn!(%error, "skipping Gemini Live audio that is not valid base64")
            }
        }
    }
    if let Some(text) = content.output_transcription.and_then(|t| t.text) {
        if !text.is_empty() {
            events.push(LiveEvent::OutputTranscript(text));
        }
    }
    if content.generation_complete.unwrap_or(false) {
        events.push(LiveEvent::GenerationComplete);
    }
    if content.turn_complete.unwrap_or(false) {
        events.push(LiveEvent::TurnComplete);
    }
    events
}

/// Send one audio chunk as a `realtimeInput` frame.
pub(super) async fn send_audio(
    sink: &mut SplitSink<LiveSocket, Message>,
    pcm: &[u8],
    send_timeout: Duration,
) -> Result<(), LiveError> {
    let text = wire::audio_message(pcm)
        .map_err(|error| LiveError::Protocol(format!("could not encode audio: {error}")))?;
    send_text(sink, text, send_timeout).await
}

/// Send one tool result as a `toolResponse` frame.
pub(super) async fn send_tool_result(
    sink: &mut SplitSink<LiveSocket, Message>,
    result: &LiveToolResult,
    send_timeout: Duration,
) -> Result<(), LiveError> {
    let text = wire::tool_response_message(result)
        .map_err(|error| LiveError::Protocol(format!("could not encode a tool result: {error}")))?;
    send_text(sink, text, send_timeout).await
}

/// Write one text frame; a failure or stall reads as a dropped connection.
pub(super) async fn send_text(
    sink: &mut SplitSink<LiveSocket, Message>,
    text: String,
    send_timeout: Duration,
) -> Result<(), LiveError> {
    match timeout(send_timeout, sink.send(Message::text(text))).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(error)) => Err(LiveError::Closed {
            code: 1006,
            reason: format!("could not send: {error}"),
        }),
        Err(_) => Err(LiveError::Closed {
            code: 1006,
            reason: format!("a send stalled for {send_timeout:?}"),
        }),
    }
}

/// Send a normal close frame; errors mean it is closed already.
pub(super) async fn close_politely(sink: &mut SplitSink<LiveSocket, Message>) {
    let frame = CloseFrame {
        code: CloseCode::Normal,
        reason: "".into(),
    };
    let _ = timeout(CLOSE_GRACE, sink.send(Message::Close(Some(frame)))).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gemini_live::wire::{InlineData, ModelTurn, Part, Transcription};

    fn audio_part(data: &str) -> Part {
        Part {
            inline_data: Some(InlineData {
                mime_type: Some("audio/pcm;rate=24000".into()),
                data: Some(data.into()),
            }),
            ..Part::default()
        }
    }

    #[test]
    fn gemini_content_events_put_interruption_first_and_turn_end_last() {
        let content = ServerContent {
            model_turn: Some(ModelTurn {
                parts: vec![
                    audio_part("AQI="),
                    Part {
                        text: Some("thinking".into()),
                        ..Part::default()
                    },
                    audio_part("!!not base64"),
                ],
            }),
            turn_complete: Some(true),
            generation_complete: Some(true),
            interrupted: Some(true),
            input_transcription: Some(Transcription {
                text: Some("hi".into()),
            }),
            output_transcription: Some(Transcription { text: None }),
        };
        assert_eq!(
            content_events(content),
            vec![
                LiveEvent::Interrupted,
                LiveEvent::InputTranscript("hi".into()),
                LiveEvent::Audio(vec![1, 2]),
                LiveEvent::GenerationComplete,
                LiveEvent::TurnComplete,
            ]
        );
    }
}
