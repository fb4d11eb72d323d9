//! The voice turn loop of one connection, shared by the binary voice socket
//! and the JSON chat sockets:
//!
//! audio in -> VAD -> end of speech -> STT -> the same turn as text (the
//! transcript is stored as the user message) -> reply deltas cut into
//! clauses -> TTS per clause -> 24 kHz audio out, paced to real time.
//!
//! Speech that starts while the assistant is speaking interrupts it: the
//! generation is cancelled, unsent audio is dropped and the stored reply is
//! cut to what the listener heard. One task owns all of this state and
//! `select!`s over its inputs; STT and TTS run on blocking threads.
//!
//! # Layout
//! - this file: the public types, [`start`] and the loop that dispatches.
//! - `listen`: VAD, utterances, speculative and confirmed transcription.
//! - `speak`: the reply cut into clauses, synthesized and paced out.
//! - `barge_in`: interruption, and the stored reply cut to what was heard.

mod barge_in;
mod listen;
mod speak;

use std::{collections::HashMap, sync::Arc, time::Duration};

use colloquy_protocol::{Sender, ServerEvent};
use colloquy_voice::vad::VadConfig;
use tokio::{
    sync::{broadcast::error::RecvError, mpsc},
    task::JoinHandle,
    time::Instant,
};
use uuid::Uuid;

use self::{
    listen::Listening,
    speak::{synthesized, Speech},
};
use super::{
    timings::{Clock, TurnRecorder, TurnTimer, VoiceMetrics},
    VoiceEngines,
};
use crate::{
    hub::{ChannelHandle, Published},
    store::Pool,
    time::sleep_until_some,
    turn::TurnService,
};

/// What a transport feeds the pipeline.
#[derive(Debug)]
pub enum VoiceInput {
    /// Microphone audio at 16 kHz.
    Audio(Vec<f32>),
    /// The client stopped recording: end the current utterance now.
    End,
    /// The client pressed stop: silence the reply being spoken, keeping
    /// what was heard, like a barge-in.
    StopSpeaking,
}

/// What the pipeline asks a transport to send.
#[derive(Debug, Clone, PartialEq)]
pub enum VoiceOutput {
    SpeechStarted,
    Transcript {
        text: String,
        client_id: Option<String>,
    },
    /// 24 kHz PCM16 LE of the reply `reply_id`.
    Audio {
        reply_id: Uuid,
        pcm: Vec<u8>,
    },
    Interrupted {
        reply_id: Uuid,
        played_ms: u64,
        content: String,
    },
    Error {
        code: &'static str,
        message: String,
    },
    /// A spoken turn was refused: the plan's daily quota is spent.
    QuotaExceeded(Box<crate::billing::QuotaExceeded>),
}

/// How a pipeline behaves.
#[derive(Debug, Clone)]
pub struct PipelineSettings {
    pub vad: VadConfig,
    pub playback_lead: Duration,
    /// Speak replies (TTS). Off, voice input still works and replies stay text.
    pub speak: bool,
    /// System prompt of the turns this pipeline starts.
    pub system_prompt: Option<String>,
    pub max_message_chars: usize,
    /// Name stored with the timings (`voice`, `chat`).
    pub transport: &'static str,
}

/// Everything a pipeline needs from the server.
#[derive(Clone)]
pub struct PipelineDeps {
    pub db: Pool,
    pub turns: Arc<TurnService>,
    pub engines: VoiceEngines,
    pub metrics: Arc<VoiceMetrics>,
}

/// A running pipeline: send input, receive output. Dropping `input` ends it.
pub struct VoiceLink {
    pub input: mpsc::Sender<VoiceInput>,
    pub output: mpsc::Receiver<VoiceOutput>,
    pub task: JoinHandle<()>,
}

/// Start a pipeline on `channel`'s conversation.
pub async fn start(
    deps: PipelineDeps,
    channel: ChannelHandle,
    settings: PipelineSettings,
) -> VoiceLink {
    let (input_tx, input_rx) = mpsc::channel(64);
    let (output_tx, output_rx) = mpsc::channel(256);
    let (_, events) = channel.subscribe().await;
    // The user has yet to speak: time to read the instruction into the model.
    deps.turns.prepare(settings.system_prompt.as_deref());
    let recorder = TurnRecorder {
        db: deps.db.clone(),
        metrics: deps.metrics.clone(),
        clock: Clock::now(),
        conversation_id: channel.id,
        transport: settings.transport,
    };
    let pipeline = Pipeline {
        listen: Listening::new(settings.vad),
        recorder,
        deps,
        channel,
        settings,
        events,
        output: output_tx,
        speech: None,
        truncations: HashMap::new(),
        timers: HashMap::new(),
    };
    let span = tracing::info_span!("voice", conversation_id = %pipeline.channel.id);
    let task = tokio::spawn(tracing::Instrument::instrument(
        pipeline.run(input_rx),
        span,
    ));
    VoiceLink {
        input: input_tx,
        output: output_rx,
        task,
    }
}

/// One connection's voice state, owned by its task. The methods that
/// listen, speak and handle barge-in live in the submodules of the same names.
struct Pipeline {
    deps: PipelineDeps,
    channel: ChannelHandle,
    settings: PipelineSettings,
    events: tokio::sync::broadcast::Receiver<Arc<Published>>,
    output: mpsc::Sender<VoiceOutput>,
    listen: Listening,
    recorder: TurnRecorder,
    speech: Option<Speech>,
    /// Interrupted replies still generating: cut to this text once stored.
    truncations: HashMap<Uuid, String>,
    /// Turns being timed, by reply id.
    timers: HashMap<Uuid, TurnTimer>,
}

impl Pipeline {
    async fn run(mut self, mut input: mpsc::Receiver<VoiceInput>) {
        loop {
            let lead = self.settings.playback_lead;
            let pump_at = self.speech.as_ref().and_then(|speech| speech.pump_at(lead));
            let finish_at = self.speech.as_ref().and_then(Speech::finish_at);
            let silence = Duration::from_millis(self.settings.vad.silence_duration_ms);
            let flush_at = self.listen.flush_at(silence);
            tokio::select! {
                received = input.recv() => match received {
                    Some(VoiceInput::Audio(samples)) => self.on_audio(&samples).await,
                    Some(VoiceInput::End) => self.end_utterance().await,
                    Some(VoiceInput::StopSpeaking) => {
                        if self.speech.as_ref().is_some_and(|s| s.is_active(Instant::now())) {
                            self.interrupt(true).await;
                        }
                    }
                    None => break,
                },
                received = self.events.recv() => match received {
                    Ok(published) => self.on_event(&published.event).await,
                    Err(RecvError::Lagged(missed)) => {
                        // Missed deltas are recovered from the final message.
                        tracing::warn!(missed, "voice pipeline fell behind its conversation");
                    }
                    Err(RecvError::Closed) => break,
                },
                joined = self.listen.transcribed() => self.on_transcribed(joined).await,
                joined = synthesized(&mut self.speech) => self.on_synthesized(joined).await,
                () = sleep_until_some(pump_at) => self.pump_audio().await,
                () = sleep_until_some(finish_at) => self.finish_speech().await,
                () = sleep_until_some(flush_at) => self.end_utterance().await,
            }
            if self.output.is_closed() {
                break;
            }
        }
        self.shut_down().await;
    }

    async fn send(&self, output: VoiceOutput) {
        // A closed output means the transport is gone; the loop notices.
        let _ = self.output.send(output).await;
    }

    async fn send_error(&self, code: &'static str, message: &str) {
        self.send(VoiceOutput::Error {
            code,
            message: message.to_owned(),
        })
        .await;
    }

    /// One event of the conversation: replies to speak and time.
    async fn on_event(&mut self, event: &ServerEvent) {
        match event {
            ServerEvent::Ack { reply_id, .. } if self.settings.speak => {
                self.start_speaking(*reply_id).await;
            }
            ServerEvent::Delta {
                message_id,
                content,
                ..
            } => {
                if let Some(timer) = self.timers.get_mut(message_id) {
                    timer.first_token.get_or_insert_with(Instant::now);
                }
                self.on_delta(*message_id, content);
            }
            ServerEvent::Message {
                message_id,
                content,
                sender: Sender::Assistant,
                status,
                is_final: true,
                ..
            } => self.on_reply_final(*message_id, content, *status).await,
            _ => {}
        }
    }

    /// The assistant must stop talking: interrupted if it still is, else
    /// its reply is finished.
    async fn end_speech(&mut self) {
        if self
            .speech
            .as_ref()
            .is_some_and(|s| s.is_active(Instant::now()))
        {
            self.interrupt(true).await;
        } else {
            self.finish_speech().await;
        }
    }
}
