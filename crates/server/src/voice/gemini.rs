//! Seed 004's voice socket served by Gemini Live: the user's 16 kHz audio
//! goes up as it arrives, Gemini's 24 kHz speech comes back paced to real
//! time (so an `interrupted` from Gemini can flush what the listener has not
//! heard yet), and both sides' transcripts are stored as the conversation's
//! messages, like the local pipeline's. The local VAD runs on the input only
//! to timestamp the end of the user's speech for the turn timings.
//!
//! The server's tools are declared to Gemini; the calls it makes run while
//! the session goes on (stored, with `tool` events for the spoken reply),
//! their results go back as `toolResponse`, and a `toolCallCancellation`
//! (or the session's end) cancels the calls still running.

use std::{collections::VecDeque, sync::Arc, time::Duration};

use axum::extract::ws::{Message, WebSocket};
use colloquy_ai::{LiveChannels, LiveConfig, LiveError, LiveEvent, LiveSetup};
use colloquy_protocol::MessageStatus;
use colloquy_voice::{
    pcm::{duration_ms, samples_for_ms},
    vad::{VadEvent, VoiceActivityDetector},
    INPUT_SAMPLE_RATE, OUTPUT_SAMPLE_RATE,
};
use futures::{SinkExt, StreamExt};
use tokio::{sync::mpsc, time::Instant};
use uuid::Uuid;

use super::{
    live_tools::{RunningCalls, TOOL_RESULTS_CAPACITY},
    playback::Playback,
    reader::AudioReader,
    timings::{Clock, StreamClock, TurnRecorder, TurnTimer},
};
use crate::{
    hub::ChannelHandle,
    input::UserText,
    socket::{close_code, Exit, Liveness},
    time::sleep_until_some,
    turn::{ExchangeUsage, SpokenExchange},
    AppState,
};

/// The model label Gemini Live exchanges are metered under.
pub(super) const USAGE_MODEL: &str = "gemini-live";

/// Bytes per outgoing chunk: 40 ms of 24 kHz PCM16.
fn chunk_bytes() -> usize {
    samples_for_ms(40, OUTPUT_SAMPLE_RATE) * 2
}

/// One exchange as it builds up.
#[derive(Default)]
struct Exchange {
    user: String,
    assistant: String,
    timer: Option<TurnTimer>,
    interrupted: bool,
    /// Speech received for this reply, in milliseconds, and what was heard.
    audio_ms: u64,
    playback: Playback,
    /// Chosen at the reply's first tool call, whose events refer to it.
    reply_id: Option<Uuid>,
    /// Tool calls made in this reply so far.
    tool_calls: u32,
    /// Whether what the user said was stored already (before the reply's
    /// tools), and as which message once that succeeded.
    words_stored: bool,
    words_stored_as: Option<Uuid>,
    /// The user's audio sent up during this exchange, in milliseconds.
    input_ms: u64,
    /// The tokens Gemini last reported for this exchange.
    usage: colloquy_ai::LiveUsage,
}

/// Store what the user said before the reply's first tool call runs: the
/// call is stored in the conversation, which exists only once something
/// was said in it, and reads after the words that caused it.
async fn store_words_before_tools(
    state: &AppState,
    channel: &ChannelHandle,
    exchange: &mut Exchange,
    reply_id: Uuid,
) {
    if exchange.words_stored {
        return;
    }
    let Ok(text) = UserText::parse(
        exchange.user.trim().to_owned(),
        state.config.max_message_chars,
    ) else {
        return;
    };
    exchange.words_stored = true;
    match state
        .turns
        .store_spoken_words(channel, text, reply_id)
        .await
    {
        Ok(question_id) => exchange.words_stored_as = Some(question_id),
        Err(error) => {
            tracing::error!(%error, "storing what the user said before a tool call failed")
        }
    }
}

/// Bridge `socket` to a Gemini Live session until either side ends it.
#[tracing::instrument(skip_all, fields(conversation_id = %channel.id))]
pub async fn bridge(
    socket: WebSocket,
    state: AppState,
    channel: ChannelHandle,
    live: Arc<LiveConfig>,
    instruction: String,
) {
    let (audio_tx, audio_rx) = mpsc::channel::<Vec<u8>>(64);
    let (events_tx, mut events) = mpsc::channel::<LiveEvent>(256);
    let (results_tx, results_rx) = mpsc::channel(TOOL_RESULTS_CAPACITY);
    let setup = LiveSetup {
        system_instruction: instruction,
        tools: state.turns.tools().definitions(),
    };
    let channels = LiveChannels {
        audio_in: audio_rx,
        tool_results_in: results_rx,
        events_out: events_tx,
    };
    let session = {
        let live = live.clone();
        tokio::spawn(async move { colloquy_ai::run_live_session(&live, setup, channels).await })
    };
    let mut running = RunningCalls::new(results_tx);
    let mut audio_tx = Some(audio_tx);
    let config = &state.config;
    let lead = Duration::from_millis(config.audio.playback_lead_ms);
    let mut liveness = Liveness::new(&state);
    let (mut sink, mut stream) = socket.split();
    let mut reader = AudioReader::new(&config.audio);
    let mut vad = VoiceActivityDetector::new(config.audio.vad());
    let mut stream_clock = StreamClock::default();
    let mut speech_end: Option<Instant> = None;
    let mut outgoing: VecDeque<u8> = VecDeque::new();
    let mut exchange = Exchange::default();
    let recorder = TurnRecorder {
        db: state.db.clone(),
        metrics: state.voice.metrics.clone(),
        clock: Clock::now(),
        conversation_id: channel.id,
        transport: "voice",
    };
    let mut session = Some(session);
    let exit = loop {
        let pump_at = (!outgoing.is_empty()).then(|| {
            exchange
                .playback
                .next_send_at(lead)
                .unwrap_or_else(Instant::now)
        });
        tokio::select! {
            wake = liveness.next(&mut stream) => match reader.on_wake(wake, &mut sink).await {
                Err(exit) => break exit,
                Ok(None) => {}
                Ok(Some(audio)) => {
                    let now = Instant::now();
                    stream_clock.received(vad.position_ms(), now);
                    for event in vad.push(&audio.samples) {
                        if let VadEvent::SpeechStopped { end_ms, .. } = event {
                            speech_end = Some(stream_clock.instant_of(end_ms, now));
                        }
                    }
                    exchange.input_ms += duration_ms(audio.samples.len(), INPUT_SAMPLE_RATE);
                    if let Some(tx) = &audio_tx {
                        if tx.send(audio.bytes.to_vec()).await.is_err() {
                            audio_tx = None;
                        }
                    }
                }
            },
            event = events.recv() => match event {
                Some(event) => {
                    let now = Instant::now();
                    let timer = exchange.timer.get_or_insert_with(|| {
                        TurnTimer::new(uuid::Uuid::nil(), speech_end.take(), None)
                    });
                    match event {
                        LiveEvent::Audio(bytes) => {
                            exchange.audio_ms += duration_ms(bytes.len() / 2, OUTPUT_SAMPLE_RATE);
                            outgoing.extend(bytes);
                        }
                        LiveEvent::Interrupted => {
                            // What the listener has not heard yet is dropped at once.
                            outgoing.clear();
                            exchange.interrupted = true;
                            timer.interrupted = true;
                        }
                        LiveEvent::InputTranscript(text) => {
                            timer.transcript.get_or_insert(now);
                            exchange.user.push_str(&text);
                        }
                        LiveEvent::OutputTranscript(text) => {
                            timer.first_token.get_or_insert(now);
                            exchange.assistant.push_str(&text);
                        }
                        LiveEvent::TurnComplete => {
                            let done = std::mem::take(&mut exchange);
                            store(&state, &channel, &recorder, done, now).await;
                        }
                        LiveEvent::Usage(usage) => {
                            tracing::debug!(
                                prompt = usage.prompt_token_count,
                                response = usage.response_token_count,
                                total = usage.total_token_count,
                                "gemini live usage"
                            );
                            exchange.usage = usage;
                        }
                        LiveEvent::ToolCalls(calls) => {
                            let reply_id = *exchange.reply_id.get_or_insert_with(Uuid::now_v7);
                            store_words_before_tools(&state, &channel, &mut exchange, reply_id).await;
                            let first = exchange.tool_calls;
                            exchange.tool_calls += running.start(&state, &channel, reply_id, first, calls);
                        }
                        LiveEvent::ToolCallsCancelled(ids) => running.cancel(&ids),
                        LiveEvent::GenerationComplete | LiveEvent::Reconnected => {}
                    }
                }
                // The session ended; its result says why.
                None => {
                    let result = match session.take() {
                        Some(task) => task.await.unwrap_or_else(|error| Err(LiveError::Protocol(error.to_string()))),
                        None => Ok(()),
                    };
                    break match result {
                        Ok(()) => Exit::close(close_code::NORMAL, "session ended"),
                        Err(error) => {
                            tracing::warn!(%error, "gemini live session failed");
                            Exit::close(close_code::INTERNAL_ERROR, error.user_message())
                        }
                    };
                }
            },
            () = running.next_finished(), if running.is_running() => {}
            () = sleep_until_some(pump_at) => {
                let now = Instant::now();
                let mut failed = false;
                while !outgoing.is_empty()
                    && exchange.playback.next_send_at(lead).is_none_or(|due| due <= now)
                {
                    let take = chunk_bytes().min(outgoing.len());
                    let chunk: Vec<u8> = outgoing.drain(..take).collect();
                    exchange.playback.sent(
                        Duration::from_millis(duration_ms(take / 2, OUTPUT_SAMPLE_RATE)),
                        now,
                    );
                    if let Some(timer) = exchange.timer.as_mut() {
                        timer.first_audio.get_or_insert(now);
                    }
                    let sent = tokio::time::timeout(liveness.timeout(), sink.send(Message::Binary(chunk.into()))).await;
                    if !matches!(sent, Ok(Ok(()))) {
                        failed = true;
                        break;
                    }
                }
                if failed {
                    break Exit::PeerGone;
                }
            }
        }
    };
    // Calls still running end as cancelled, so each `start` has its `end`.
    running.stop().await;
    // Whatever was said before the end is kept.
    if !exchange.user.is_empty() || !exchange.assistant.is_empty() || exchange.tool_calls > 0 {
        exchange.interrupted |=
            !outgoing.is_empty() || exchange.playback.is_playing(Instant::now());
        store(&state, &channel, &recorder, exchange, Instant::now()).await;
    }
    drop(audio_tx);
    if let Some(task) = session {
        task.abort();
    }
    if let Some(close) = exit.into_message() {
        let _ = sink.send(close).await;
    }
    tracing::debug!("gemini live voice session closed");
}

/// Store one exchange (the reply cut to what was heard if it was
/// interrupted) and its timing.
async fn store(
    state: &AppState,
    channel: &ChannelHandle,
    recorder: &TurnRecorder,
    exchange: Exchange,
    end: Instant,
) {
    let user = UserText::parse(
        exchange.user.trim().to_owned(),
        state.config.max_message_chars,
    )
    .ok()
    .filter(|_| !exchange.words_stored);
    let (reply, status) = if exchange.interrupted {
        let heard_ms = exchange.playback.heard_ms(end);
        let words: Vec<&str> = exchange.assistant.split_whitespace().collect();
        let fraction = if exchange.audio_ms == 0 {
            0.0
        } else {
            (heard_ms as f64 / exchange.audio_ms as f64).min(1.0)
        };
        let count = (words.len() as f64 * fraction).floor() as usize;
        (words[..count].join(" "), MessageStatus::Interrupted)
    } else {
        (
            exchange.assistant.trim().to_owned(),
            MessageStatus::Complete,
        )
    };
    // A reply that only called tools is stored too: its calls refer to it.
    if user.is_none() && reply.is_empty() && exchange.tool_calls == 0 {
        return;
    }
    let cost = ExchangeUsage {
        model: USAGE_MODEL.to_owned(),
        tokens: colloquy_ai::Usage {
            prompt_tokens: exchange.usage.prompt_token_count,
            completion_tokens: exchange.usage.response_token_count,
            ..colloquy_ai::Usage::default()
        },
        voice_ms_in: exchange.input_ms,
        voice_ms_out: exchange.playback.heard_ms(end).min(exchange.audio_ms),
        tool_calls: exchange.tool_calls,
    };
    match state
        .turns
        .store_exchange(
            channel,
            SpokenExchange {
                user_text: user,
                reply: &reply,
                status,
                reply_id: exchange.reply_id,
                words_stored_as: exchange.words_stored_as,
                cost,
            },
        )
        .await
    {
        Ok(reply_id) => {
            if let Some(mut timer) = exchange.timer {
                timer.reply_id = reply_id;
                recorder.record(&timer, end).await;
            }
        }
        Err(error) => tracing::error!(%error, "storing a Gemini Live exchange failed"),
    }
}
