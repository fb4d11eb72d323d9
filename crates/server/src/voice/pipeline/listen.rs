//! Listening: microphone audio through the VAD into utterances, each
//! utterance through STT (on a blocking thread) into a transcript that
//! starts a turn.
//!
//! A pause in speech long enough to end most utterances starts a
//! speculative transcription during the rest of the silence; if the
//! utterance does end there, its transcript is ready sooner. Speech that
//! starts while the assistant talks ends the reply (see `barge_in`).

use std::{collections::VecDeque, time::Duration};

use colloquy_voice::{
    vad::{VadConfig, VadEvent, VoiceActivityDetector},
    VoiceError,
};
use tokio::{
    task::{JoinError, JoinHandle},
    time::Instant,
};
use uuid::Uuid;

use super::{Pipeline, VoiceOutput};
use crate::{
    input::{ClientId, UserText},
    turn::{SubmitError, TurnOptions},
    voice::timings::{StreamClock, TurnTimer},
};

/// Utterances waiting for STT beyond this are dropped (the user is far
/// ahead of the machine; an error says so).
const MAX_QUEUED_UTTERANCES: usize = 4;

/// One utterance on its way to the transcript.
struct Utterance {
    audio: Vec<f32>,
    speech_end: Instant,
}

/// How long `audio` (16 kHz samples) lasts, in milliseconds: the voice
/// heard that a turn is metered for.
fn audio_ms(audio: &[f32]) -> u64 {
    colloquy_voice::pcm::duration_ms(audio.len(), colloquy_voice::INPUT_SAMPLE_RATE)
}

/// Identifies the audio of an utterance: where its voice ended and its length.
type AudioKey = (u64, usize);

/// What a transcription is for.
#[derive(Debug, Clone, Copy)]
enum SttJob {
    /// A confirmed utterance (`audio_ms` long): its transcript starts a turn.
    Utterance { speech_end: Instant, audio_ms: u64 },
    /// Started when the voice paused, before the silence confirmed the end
    /// of the utterance: used only if the utterance ends with this audio
    /// (the job then becomes that utterance's).
    Speculative { key: AudioKey },
}

type Transcribed = Result<String, VoiceError>;

/// What the pipeline hears: the VAD and the transcriptions under way.
pub(super) struct Listening {
    vad: VoiceActivityDetector,
    stream_clock: StreamClock,
    /// When audio last arrived, while the VAD may hold speech.
    last_audio: Option<Instant>,
    utterances: VecDeque<Utterance>,
    stt_task: Option<JoinHandle<Transcribed>>,
    /// What `stt_task` is transcribing.
    stt_job: Option<SttJob>,
    /// A finished speculative transcript, waiting for its utterance to end.
    speculated: Option<(AudioKey, Transcribed)>,
}

impl Listening {
    pub(super) fn new(vad: VadConfig) -> Self {
        Self {
            vad: VoiceActivityDetector::new(vad),
            stream_clock: StreamClock::default(),
            last_audio: None,
            utterances: VecDeque::new(),
            stt_task: None,
            stt_job: None,
            speculated: None,
        }
    }

    /// When `silence` after the last audio ends the speech the VAD holds:
    /// a client that stops sending mid-utterance still gets its answer.
    pub(super) fn flush_at(&self, silence: Duration) -> Option<Instant> {
        self.last_audio
            .filter(|_| self.vad.has_pending_speech())
            .map(|at| at + silence)
    }

    /// The end of the transcription under way (pending while none is).
    pub(super) async fn transcribed(&mut self) -> Result<Transcribed, JoinError> {
        let joined = match self.stt_task.as_mut() {
            Some(task) => task.await,
            None => std::future::pending().await,
        };
        self.stt_task = None;
        joined
    }
}

impl Pipeline {
    pub(super) async fn on_audio(&mut self, samples: &[f32]) {
        let now = Instant::now();
        self.listen
            .stream_clock
            .received(self.listen.vad.position_ms(), now);
        self.listen.last_audio = Some(now);
        for event in self.listen.vad.push(samples) {
            self.on_vad(event).await;
        }
    }

    pub(super) async fn end_utterance(&mut self) {
        self.listen.last_audio = None;
        if let Some(event) = self.listen.vad.flush() {
            self.on_vad(event).await;
        }
    }

    async fn on_vad(&mut self, event: VadEvent) {
        match event {
            VadEvent::SpeechStarted { .. } => {
                self.discard_speculation();
                self.send(VoiceOutput::SpeechStarted).await;
                self.end_speech().await;
            }
            VadEvent::SpeechPaused { end_ms, audio } => {
                // Transcribe during the rest of the silence, if the engine is
                // free: most pauses this long do end the utterance.
                if self.listen.stt_task.is_none() && self.listen.utterances.is_empty() {
                    self.discard_speculation();
                    let job = SttJob::Speculative {
                        key: (end_ms, audio.len()),
                    };
                    self.spawn_transcription(job, audio);
                }
            }
            VadEvent::SpeechStopped { end_ms, audio, .. } => {
                let now = Instant::now();
                let speech_end = self.listen.stream_clock.instant_of(end_ms, now);
                let key = (end_ms, audio.len());
                if self
                    .listen
                    .speculated
                    .as_ref()
                    .is_some_and(|(done, _)| *done == key)
                {
                    if let Some((_, result)) = self.listen.speculated.take() {
                        self.deps.metrics.speculation(true);
                        let heard = audio_ms(&audio);
                        return self.on_transcript(speech_end, heard, result).await;
                    }
                }
                self.discard_speculation();
                if let Some(job) = self.listen.stt_job.as_mut() {
                    if matches!(job, SttJob::Speculative { key: running } if *running == key) {
                        self.deps.metrics.speculation(true);
                        *job = SttJob::Utterance {
                            speech_end,
                            audio_ms: audio_ms(&audio),
                        };
                        return;
                    }
                }
                if self.listen.utterances.len() >= MAX_QUEUED_UTTERANCES {
                    self.send(VoiceOutput::Error {
                        code: "overloaded",
                        message: "speech is arriving faster than it can be transcribed".into(),
                    })
                    .await;
                    return;
                }
                self.listen
                    .utterances
                    .push_back(Utterance { audio, speech_end });
                self.start_transcription();
            }
        }
    }

    fn discard_speculation(&mut self) {
        if self.listen.speculated.take().is_some() {
            self.deps.metrics.speculation(false);
        }
    }

    fn spawn_transcription(&mut self, job: SttJob, audio: Vec<f32>) {
        let stt = self.deps.engines.stt.clone();
        self.listen.stt_job = Some(job);
        self.listen.stt_task = Some(tokio::task::spawn_blocking(move || stt.transcribe(&audio)));
    }

    fn start_transcription(&mut self) {
        if self.listen.stt_task.is_some() {
            return;
        }
        let Some(utterance) = self.listen.utterances.pop_front() else {
            return;
        };
        let job = SttJob::Utterance {
            speech_end: utterance.speech_end,
            audio_ms: audio_ms(&utterance.audio),
        };
        self.spawn_transcription(job, utterance.audio);
    }

    pub(super) async fn on_transcribed(&mut self, joined: Result<Transcribed, JoinError>) {
        let job = self.listen.stt_job.take();
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
            Some(SttJob::Utterance {
                speech_end,
                audio_ms,
            }) => {
                self.start_transcription();
                self.on_transcript(speech_end, audio_ms, result).await;
            }
            None => self.start_transcription(),
            Some(SttJob::Speculative { key }) => {
                self.start_transcription();
                self.listen.speculated = Some((key, result));
            }
        }
    }

    /// A transcript is ready: show it and start the turn.
    async fn on_transcript(&mut self, speech_end: Instant, audio_ms: u64, result: Transcribed) {
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
            // At least a millisecond: this turn is a spoken one.
            voice_ms_in: audio_ms.max(1),
            ..TurnOptions::default()
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
            Err(SubmitError::QuotaExceeded(quota)) => {
                self.send(VoiceOutput::QuotaExceeded(quota)).await;
            }
            Err(error) => {
                tracing::warn!(%error, "voice message refused");
                self.send_error(error.code(), &error.to_string()).await;
            }
        }
    }
}
