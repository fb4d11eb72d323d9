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

use std::{
    collections::{HashMap, VecDeque},
    sync::Arc,
    time::Duration,
};

use colloquy_protocol::{MessageStatus, Sender, ServerEvent};
use colloquy_voice::{
    clause::ClauseSplitter,
    pcm::{duration_ms, encode_pcm16, samples_for_ms},
    resample::resample,
    vad::{VadConfig, VadEvent, VoiceActivityDetector},
    VoiceError, OUTPUT_SAMPLE_RATE,
};
use tokio::{
    sync::{broadcast::error::RecvError, mpsc},
    task::{JoinError, JoinHandle},
    time::{sleep_until, Instant},
};
use uuid::Uuid;

use super::{
    playback::Playback,
    timings::{Clock, StreamClock, TurnRecorder, TurnTimer, VoiceMetrics},
    VoiceEngines,
};
use crate::{
    hub::{ChannelHandle, Published},
    input::{ClientId, UserText},
    store::Pool,
    turn::{TurnOptions, TurnService},
};

/// Audio per outgoing chunk: small enough that an interruption stops the
/// sound quickly, large enough to keep frames few.
const CHUNK_MS: u64 = 40;
/// How long to wait for an interrupted reply's final message at the end.
const TRUNCATION_WAIT: Duration = Duration::from_secs(5);
/// Utterances waiting for STT beyond this are dropped (the user is far
/// ahead of the machine; an error says so).
const MAX_QUEUED_UTTERANCES: usize = 4;

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
        vad: VoiceActivityDetector::new(settings.vad),
        recorder,
        stream_clock: StreamClock::default(),
        last_audio: None,
        deps,
        channel,
        settings,
        events,
        output: output_tx,
        utterances: VecDeque::new(),
        stt_task: None,
        stt_job: None,
        speculated: None,
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

/// One utterance on its way to the transcript.
struct Utterance {
    audio: Vec<f32>,
    speech_end: Instant,
}

/// Identifies the audio of an utterance: where its voice ended and its length.
type AudioKey = (u64, usize);

/// What a transcription is for.
#[derive(Debug, Clone, Copy)]
enum SttJob {
    /// A confirmed utterance: its transcript starts a turn.
    Utterance { speech_end: Instant },
    /// Started when the voice paused, before the silence confirmed the end
    /// of the utterance: used only if the utterance ends with this audio
    /// (the job then becomes that utterance's).
    Speculative { key: AudioKey },
}

type Transcribed = Result<String, VoiceError>;
type Synthesized = Result<(String, Vec<f32>), VoiceError>;

/// The reply being spoken.
struct Speech {
    reply_id: Uuid,
    splitter: ClauseSplitter,
    /// Reply text seen so far, to recover deltas missed by a lagging receiver.
    text: String,
    clauses: VecDeque<String>,
    synth: Option<JoinHandle<Synthesized>>,
    /// 24 kHz samples synthesized but not sent yet.
    pending: VecDeque<f32>,
    playback: Playback,
    generation_done: bool,
}

impl Speech {
    fn new(reply_id: Uuid) -> Self {
        Self {
            reply_id,
            splitter: ClauseSplitter::new(),
            text: String::new(),
            clauses: VecDeque::new(),
            synth: None,
            pending: VecDeque::new(),
            playback: Playback::default(),
            generation_done: false,
        }
    }

    /// Nothing left to generate, synthesize or send.
    fn all_sent(&self) -> bool {
        self.generation_done
            && self.clauses.is_empty()
            && self.synth.is_none()
            && self.pending.is_empty()
    }

    /// Whether the assistant is still talking (or about to).
    fn is_active(&self, now: Instant) -> bool {
        !self.all_sent() || self.playback.is_playing(now)
    }
}

struct Pipeline {
    deps: PipelineDeps,
    channel: ChannelHandle,
    settings: PipelineSettings,
    events: tokio::sync::broadcast::Receiver<Arc<Published>>,
    output: mpsc::Sender<VoiceOutput>,
    vad: VoiceActivityDetector,
    recorder: TurnRecorder,
    stream_clock: StreamClock,
    last_audio: Option<Instant>,
    utterances: VecDeque<Utterance>,
    stt_task: Option<JoinHandle<Transcribed>>,
    /// What `stt_task` is transcribing.
    stt_job: Option<SttJob>,
    /// A finished speculative transcript, waiting for its utterance to end.
    speculated: Option<(AudioKey, Result<String, VoiceError>)>,
    speech: Option<Speech>,
    /// Interrupted replies still generating: cut to this text once stored.
    truncations: HashMap<Uuid, String>,
    /// Turns being timed, by reply id.
    timers: HashMap<Uuid, TurnTimer>,
}

async fn join_task<T>(task: &mut Option<JoinHandle<T>>) -> Result<T, JoinError> {
    match task.as_mut() {
        Some(task) => task.await,
        None => std::future::pending().await,
    }
}

async fn sleep_until_some(at: Option<Instant>) {
    match at {
        Some(at) => sleep_until(at).await,
        None => std::future::pending().await,
    }
}

impl Pipeline {
    async fn run(mut self, mut input: mpsc::Receiver<VoiceInput>) {
        loop {
            let lead = self.settings.playback_lead;
            let pump_at = self
                .speech
                .as_ref()
                .filter(|speech| !speech.pending.is_empty())
                .map(|speech| {
                    speech
                        .playback
                        .next_send_at(lead)
                        .unwrap_or_else(Instant::now)
                });
            let finish_at = self
                .speech
                .as_ref()
                .filter(|speech| speech.all_sent())
                .map(|speech| speech.playback.playhead_end().unwrap_or_else(Instant::now));
            let flush_at = self
                .last_audio
                .filter(|_| self.vad.has_pending_speech())
                .map(|at| at + Duration::from_millis(self.settings.vad.silence_duration_ms));
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
                joined = join_task(&mut self.stt_task) => {
                    self.stt_task = None;
                    self.on_transcribed(joined).await;
                }
                joined = join_synthesis(&mut self.speech) => {
                    if let Some(speech) = self.speech.as_mut() {
                        speech.synth = None;
                    }
                    self.on_synthesized(joined).await;
                }
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

    /// The client left: a reply being spoken is cut to what was heard, as
    /// if interrupted, since the rest was never heard.
    async fn shut_down(&mut self) {
        if self
            .speech
            .as_ref()
            .is_some_and(|speech| speech.is_active(Instant::now()))
        {
            self.interrupt(false).await;
        }
        let deadline = Instant::now() + TRUNCATION_WAIT;
        while !self.truncations.is_empty() {
            match tokio::time::timeout_at(deadline, self.events.recv()).await {
                Ok(Ok(published)) => self.on_event(&published.event).await,
                Ok(Err(RecvError::Lagged(_))) => {}
                Ok(Err(RecvError::Closed)) | Err(_) => break,
            }
        }
    }

    async fn send(&self, output: VoiceOutput) {
        // A closed output means the transport is gone; the loop notices.
        let _ = self.output.send(output).await;
    }

    async fn on_audio(&mut self, samples: &[f32]) {
        let now = Instant::now();
        self.stream_clock.received(self.vad.position_ms(), now);
        self.last_audio = Some(now);
        for event in self.vad.push(samples) {
            self.on_vad(event).await;
        }
    }

    async fn end_utterance(&mut self) {
        self.last_audio = None;
        if let Some(event) = self.vad.flush() {
            self.on_vad(event).await;
        }
    }

    async fn on_vad(&mut self, event: VadEvent) {
        match event {
            VadEvent::SpeechStarted { .. } => {
                self.discard_speculation();
                self.send(VoiceOutput::SpeechStarted).await;
                let now = Instant::now();
                if self.speech.as_ref().is_some_and(|s| s.is_active(now)) {
                    self.interrupt(true).await;
                } else {
                    self.finish_speech().await;
                }
            }
            VadEvent::SpeechPaused { end_ms, audio } => {
                // Transcribe during the rest of the silence, if the engine is
                // free: most pauses this long do end the utterance.
                if self.stt_task.is_none() && self.utterances.is_empty() {
                    self.discard_speculation();
                    let job = SttJob::Speculative {
                        key: (end_ms, audio.len()),
                    };
                    self.spawn_transcription(job, audio);
                }
            }
            VadEvent::SpeechStopped { end_ms, audio, .. } => {
                let now = Instant::now();
                let speech_end = self.stream_clock.instant_of(end_ms, now);
                let key = (end_ms, audio.len());
                if self
                    .speculated
                    .as_ref()
                    .is_some_and(|(done, _)| *done == key)
                {
                    if let Some((_, result)) = self.speculated.take() {
                        self.deps.metrics.speculation(true);
                        return self.on_transcript(speech_end, result).await;
                    }
                }
                self.discard_speculation();
                if let Some(job) = self.stt_job.as_mut() {
                    if matches!(job, SttJob::Speculative { key: running } if *running == key) {
                        self.deps.metrics.speculation(true);
                        *job = SttJob::Utterance { speech_end };
                        return;
                    }
                }
                if self.utterances.len() >= MAX_QUEUED_UTTERANCES {
                    self.send(VoiceOutput::Error {
                        code: "overloaded",
                        message: "speech is arriving faster than it can be transcribed".into(),
                    })
                    .await;
                    return;
                }
                self.utterances.push_back(Utterance { audio, speech_end });
                self.start_transcription();
            }
        }
    }

    fn discard_speculation(&mut self) {
        if self.speculated.take().is_some() {
            self.deps.metrics.speculation(false);
        }
    }

    fn spawn_transcription(&mut self, job: SttJob, audio: Vec<f32>) {
        let stt = self.deps.engines.stt.clone();
        self.stt_job = Some(job);
        self.stt_task = Some(tokio::task::spawn_blocking(move || stt.transcribe(&audio)));
    }

    fn start_transcription(&mut self) {
        if self.stt_task.is_some() {
            return;
        }
        let Some(utterance) = self.utterances.pop_front() else {
            return;
        };
        let job = SttJob::Utterance {
            speech_end: utterance.speech_end,
        };
        self.spawn_transcription(job, utterance.audio);
    }

    async fn on_transcribed(&mut self, joined: Result<Transcribed, JoinError>) {
        let job = self.stt_job.take();
        let result = match joined {
            Ok(result) => result,
            Err(error) => {
                tracing::error!(%error, "transcription task failed");
                // An unconfirmed speculation failing is no one's loss yet.
                let wanted = matches!(job, Some(SttJob::Utterance { .. }));
                self.start_transcription();
                if wanted {
                    self.send_error("stt_failed", "your speech could not be transcribed")
                        .await;
                }
                return;
            }
        };
        match job {
            Some(SttJob::Utterance { speech_end }) => {
                self.start_transcription();
                self.on_transcript(speech_end, result).await;
            }
            None => self.start_transcription(),
            Some(SttJob::Speculative { key }) => {
                self.start_transcription();
                self.speculated = Some((key, result));
            }
        }
    }

    /// A transcript is ready: show it and start the turn.
    async fn on_transcript(&mut self, speech_end: Instant, result: Result<String, VoiceError>) {
        let text = match result {
            Ok(text) => text.trim().to_owned(),
            Err(error) => {
                tracing::error!(%error, "transcription failed");
                return self
                    .send_error("stt_failed", "your speech could not be transcribed")
                    .await;
            }
        };
        let transcript_at = Instant::now();
        if text.is_empty() {
            return self
                .send(VoiceOutput::Transcript {
                    text,
                    client_id: None,
                })
                .await;
        }
        let client_id = format!("voice-{}", Uuid::now_v7());
        self.send(VoiceOutput::Transcript {
            text: text.clone(),
            client_id: Some(client_id.clone()),
        })
        .await;
        let parsed = UserText::parse(text, self.settings.max_message_chars)
            .and_then(|text| Ok((text, ClientId::parse(client_id)?)));
        let (text, client_id) = match parsed {
            Ok(parsed) => parsed,
            Err(invalid) => return self.send_error(invalid.code, &invalid.message).await,
        };
        let options = TurnOptions {
            system_prompt: self.settings.system_prompt.clone(),
        };
        match self
            .deps
            .turns
            .submit_with(&self.channel, text, Some(client_id), options)
            .await
        {
            Ok(submitted) => {
                let timer =
                    TurnTimer::new(submitted.reply_id, Some(speech_end), Some(transcript_at));
                self.timers.insert(submitted.reply_id, timer);
            }
            Err(error) => {
                tracing::warn!(%error, "voice message refused");
                self.send_error(error.code(), &error.to_string()).await;
            }
        }
    }

    async fn send_error(&self, code: &'static str, message: &str) {
        self.send(VoiceOutput::Error {
            code,
            message: message.to_owned(),
        })
        .await;
    }

    async fn on_event(&mut self, event: &ServerEvent) {
        match event {
            ServerEvent::Ack { reply_id, .. } => {
                if !self.settings.speak {
                    return;
                }
                // A new message (typed here or in another tab) ends any speech.
                if self
                    .speech
                    .as_ref()
                    .is_some_and(|s| s.is_active(Instant::now()))
                {
                    self.interrupt(true).await;
                } else {
                    self.finish_speech().await;
                }
                self.speech = Some(Speech::new(*reply_id));
                self.timers
                    .entry(*reply_id)
                    .or_insert_with(|| TurnTimer::new(*reply_id, None, None));
            }
            ServerEvent::Delta {
                message_id,
                content,
                ..
            } => {
                if let Some(timer) = self.timers.get_mut(message_id) {
                    timer.first_token.get_or_insert_with(Instant::now);
                }
                if let Some(speech) = self.speech.as_mut().filter(|s| s.reply_id == *message_id) {
                    speech.text.push_str(content);
                    let clauses = speech.splitter.push(content);
                    speech.clauses.extend(clauses);
                    self.start_synthesis();
                }
            }
            ServerEvent::Message {
                message_id,
                content,
                sender: Sender::Assistant,
                status,
                is_final: true,
                ..
            } => self.on_final(*message_id, content, *status).await,
            _ => {}
        }
    }

    async fn on_final(&mut self, reply_id: Uuid, content: &str, status: MessageStatus) {
        if let Some(heard) = self.truncations.remove(&reply_id) {
            // The reply task stored the cut itself, unless it finished first.
            let unused_cut = self.channel.take_cut(reply_id);
            if status == MessageStatus::Interrupted && unused_cut.is_none() && content == heard {
                return;
            }
            if let Err(error) = self
                .deps
                .turns
                .truncate_spoken_reply(&self.channel, reply_id, &heard)
                .await
            {
                tracing::error!(%error, "storing the heard part of a reply failed");
            }
            return;
        }
        let speaking = self.speech.as_mut().filter(|s| s.reply_id == reply_id);
        match speaking {
            Some(speech) if !speech.generation_done => {
                speech.generation_done = true;
                if status != MessageStatus::Error {
                    // Deltas a lagging receiver missed are in the final text.
                    if let Some(missed) = content.strip_prefix(speech.text.as_str()) {
                        let clauses = speech.splitter.push(missed);
                        speech.clauses.extend(clauses);
                    }
                    speech.clauses.extend(speech.splitter.finish());
                }
                self.start_synthesis();
            }
            Some(_) => {}
            // Not spoken (TTS off): the turn ends with its text.
            None => {
                if let Some(timer) = self.timers.remove(&reply_id) {
                    self.recorder.record(&timer, Instant::now()).await;
                }
            }
        }
    }

    fn start_synthesis(&mut self) {
        let Some(speech) = self.speech.as_mut() else {
            return;
        };
        if speech.synth.is_some() {
            return;
        }
        let Some(clause) = speech.clauses.pop_front() else {
            return;
        };
        let tts = self.deps.engines.tts.clone();
        speech.synth = Some(tokio::task::spawn_blocking(move || {
            let audio = tts.synthesize(&clause)?;
            let audio = resample(&audio, tts.sample_rate(), OUTPUT_SAMPLE_RATE)?;
            Ok((clause, audio))
        }));
    }

    async fn on_synthesized(&mut self, joined: Result<Synthesized, JoinError>) {
        match joined {
            Ok(Ok((clause, audio))) => {
                if let Some(speech) = self.speech.as_mut() {
                    let ms = duration_ms(audio.len(), OUTPUT_SAMPLE_RATE);
                    speech.playback.add_clause(clause, ms);
                    speech.pending.extend(audio);
                }
            }
            Ok(Err(error)) => tracing::error!(%error, "speech synthesis failed; clause skipped"),
            Err(error) => tracing::error!(%error, "speech synthesis task failed"),
        }
        self.start_synthesis();
        self.pump_audio().await;
    }

    /// Send audio until the client holds `playback_lead` of it.
    async fn pump_audio(&mut self) {
        let lead = self.settings.playback_lead;
        let chunk = samples_for_ms(CHUNK_MS, OUTPUT_SAMPLE_RATE);
        loop {
            let now = Instant::now();
            let Some(speech) = self.speech.as_mut() else {
                return;
            };
            if speech.pending.is_empty() {
                return;
            }
            if speech
                .playback
                .next_send_at(lead)
                .is_some_and(|due| due > now)
            {
                return;
            }
            let take = chunk.min(speech.pending.len());
            let samples: Vec<f32> = speech.pending.drain(..take).collect();
            speech.playback.sent(
                Duration::from_millis(duration_ms(take, OUTPUT_SAMPLE_RATE)),
                now,
            );
            let reply_id = speech.reply_id;
            if let Some(timer) = self.timers.get_mut(&reply_id) {
                timer.first_audio.get_or_insert(now);
            }
            let pcm = encode_pcm16(&samples);
            if self
                .output
                .send(VoiceOutput::Audio { reply_id, pcm })
                .await
                .is_err()
            {
                return;
            }
        }
    }

    /// The reply was spoken to its end.
    async fn finish_speech(&mut self) {
        let Some(speech) = self.speech.take() else {
            return;
        };
        let end = speech.playback.playhead_end().unwrap_or_else(Instant::now);
        if let Some(timer) = self.timers.remove(&speech.reply_id) {
            self.recorder.record(&timer, end).await;
        }
    }

    /// The user spoke over the reply: stop it and keep only what was heard.
    async fn interrupt(&mut self, tell_client: bool) {
        let Some(mut speech) = self.speech.take() else {
            return;
        };
        let now = Instant::now();
        let played_ms = speech.playback.heard_ms(now);
        let heard = speech.playback.heard_text(played_ms);
        let reply_id = speech.reply_id;
        // A synthesis in flight finishes on its thread; its result is dropped.
        speech.synth.take();
        tracing::debug!(%reply_id, played_ms, "reply interrupted");
        if speech.generation_done {
            if let Err(error) = self
                .deps
                .turns
                .truncate_spoken_reply(&self.channel, reply_id, &heard)
                .await
            {
                tracing::error!(%error, "storing the heard part of a reply failed");
            }
        } else {
            self.truncations.insert(reply_id, heard.clone());
            self.channel.cut_reply(reply_id, heard.clone());
        }
        if tell_client {
            self.send(VoiceOutput::Interrupted {
                reply_id,
                played_ms,
                content: heard,
            })
            .await;
        }
        if let Some(mut timer) = self.timers.remove(&reply_id) {
            timer.interrupted = true;
            self.recorder.record(&timer, now).await;
        }
    }
}

async fn join_synthesis(speech: &mut Option<Speech>) -> Result<Synthesized, JoinError> {
    match speech.as_mut().and_then(|speech| speech.synth.as_mut()) {
        Some(task) => task.await,
        None => std::future::pending().await,
    }
}
