//! Speaking: the reply's deltas cut into clauses, each clause synthesized
//! on a blocking thread and resampled to 24 kHz, and the audio sent in
//! small chunks paced to real time (the client holds `playback_lead` of it
//! at most), so that an interruption silences it quickly and the pipeline
//! knows what the listener has heard.

use std::{collections::VecDeque, time::Duration};

use colloquy_protocol::MessageStatus;
use colloquy_voice::{
    clause::ClauseSplitter,
    pcm::{duration_ms, encode_pcm16, samples_for_ms},
    resample::resample,
    VoiceError, OUTPUT_SAMPLE_RATE,
};
use tokio::{
    task::{JoinError, JoinHandle},
    time::Instant,
};
use uuid::Uuid;

use super::{Pipeline, VoiceOutput};
use crate::voice::{playback::Playback, timings::TurnTimer};

/// Audio per outgoing chunk: small enough that an interruption stops the
/// sound quickly, large enough to keep frames few.
const CHUNK_MS: u64 = 40;

/// A synthesized clause: its text and its 24 kHz audio.
pub(super) type Synthesized = Result<(String, Vec<f32>), VoiceError>;

/// The reply being spoken.
pub(super) struct Speech {
    pub(super) reply_id: Uuid,
    splitter: ClauseSplitter,
    /// Reply text seen so far, to recover deltas missed by a lagging receiver.
    text: String,
    clauses: VecDeque<String>,
    pub(super) synth: Option<JoinHandle<Synthesized>>,
    /// 24 kHz samples synthesized but not sent yet.
    pending: VecDeque<f32>,
    pub(super) playback: Playback,
    pub(super) generation_done: bool,
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
    pub(super) fn is_active(&self, now: Instant) -> bool {
        !self.all_sent() || self.playback.is_playing(now)
    }

    /// When more audio is due, if some is waiting: once the client holds
    /// less than `lead` of it.
    pub(super) fn pump_at(&self, lead: Duration) -> Option<Instant> {
        (!self.pending.is_empty()).then(|| {
            self.playback
                .next_send_at(lead)
                .unwrap_or_else(Instant::now)
        })
    }

    /// When the reply has been heard to its end, once all of it is sent.
    pub(super) fn finish_at(&self) -> Option<Instant> {
        self.all_sent()
            .then(|| self.playback.playhead_end().unwrap_or_else(Instant::now))
    }
}

/// The end of the synthesis under way (pending while none is).
pub(super) async fn synthesized(speech: &mut Option<Speech>) -> Result<Synthesized, JoinError> {
    let joined = match speech.as_mut().and_then(|speech| speech.synth.as_mut()) {
        Some(task) => task.await,
        None => std::future::pending().await,
    };
    if let Some(speech) = speech.as_mut() {
        speech.synth = None;
    }
    joined
}

impl Pipeline {
    /// A new message (typed here or in another tab) ends any speech; its
    /// reply is the one spoken next.
    pub(super) async fn start_speaking(&mut self, reply_id: Uuid) {
        self.end_speech().await;
        self.speech = Some(Speech::new(reply_id));
        self.timers
            .entry(reply_id)
            .or_insert_with(|| TurnTimer::new(reply_id, None, None));
    }

    /// More of the reply's text: its finished clauses go to synthesis.
    pub(super) fn on_delta(&mut self, reply_id: Uuid, content: &str) {
        if let Some(speech) = self.speech.as_mut().filter(|s| s.reply_id == reply_id) {
            speech.text.push_str(content);
            let clauses = speech.splitter.push(content);
            speech.clauses.extend(clauses);
            self.start_synthesis();
        }
    }

    /// A reply's final message: the rest of its text goes to synthesis (a
    /// reply not spoken, with TTS off, ends its turn here).
    pub(super) async fn on_final(&mut self, reply_id: Uuid, content: &str, status: MessageStatus) {
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

    pub(super) async fn on_synthesized(&mut self, joined: Result<Synthesized, JoinError>) {
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
    pub(super) async fn pump_audio(&mut self) {
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
    pub(super) async fn finish_speech(&mut self) {
        let Some(speech) = self.speech.take() else {
            return;
        };
        let end = speech.playback.playhead_end().unwrap_or_else(Instant::now);
        self.meter_speech(speech.playback.heard_ms(end)).await;
        if let Some(timer) = self.timers.remove(&speech.reply_id) {
            self.recorder.record(&timer, end).await;
        }
    }

    /// Meter `played_ms` of a reply's speech as voice out. The reply was
    /// stored (and metered) before its speech ended, so this is a usage
    /// row of its own: no message, only the seconds spoken.
    pub(super) async fn meter_speech(&self, played_ms: u64) {
        if played_ms == 0 {
            return;
        }
        let turns = &self.deps.turns;
        let usage = crate::store::UsageDelta {
            messages: 0,
            voice_ms_out: i64::try_from(played_ms).unwrap_or(i64::MAX),
            ..turns
                .billing()
                .reply_usage(self.channel.owner, &turns.default_model_id())
        };
        if let Err(error) = turns.billing().add(&usage).await {
            tracing::warn!(%error, "metering spoken audio failed");
        }
    }
}
