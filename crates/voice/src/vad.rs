//! Voice activity detection with start/stop hysteresis, configured like
//! OpenAI's server VAD (threshold, prefix padding, silence duration) plus a
//! minimum speech duration so that short blips (a cough, a door, a click)
//! never count as speech and never interrupt the assistant.
//!
//! Frames are scored by earshot's neural detector (16 ms frames at 16 kHz).

use std::collections::VecDeque;

use crate::pcm::duration_ms;
use crate::INPUT_SAMPLE_RATE;

/// Samples per earshot frame: 16 ms at 16 kHz.
pub const FRAME_SAMPLES: usize = 256;
const FRAME_MS: u64 = 16;
/// Silence kept after the last voiced frame: word endings fade below the
/// detector's threshold before they are really over.
const TAIL_MS: u64 = 160;

/// Tuning of the detector; defaults follow OpenAI's server VAD except the
/// silence duration, shortened because every millisecond of it is added to
/// the time before the reply starts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VadConfig {
    /// Frame score (0..1) at or above which a frame is voiced.
    pub threshold: f32,
    /// Audio kept from before speech was detected, so first syllables are not clipped.
    pub prefix_padding_ms: u64,
    /// Silence that ends an utterance.
    pub silence_duration_ms: u64,
    /// Voiced audio needed before an utterance counts as speech (blips shorter than this are ignored).
    pub min_speech_ms: u64,
    /// An utterance this long is cut and transcribed even without a pause.
    pub max_utterance_ms: u64,
}

impl Default for VadConfig {
    fn default() -> Self {
        Self {
            threshold: 0.5,
            prefix_padding_ms: 300,
            silence_duration_ms: 400,
            min_speech_ms: 250,
            max_utterance_ms: 30_000,
        }
    }
}

/// What the detector noticed in the audio pushed so far. Times are stream
/// positions in milliseconds since the detector was created.
#[derive(Debug, Clone, PartialEq)]
pub enum VadEvent {
    /// Speech confirmed (at least `min_speech_ms` voiced): the moment to barge in.
    SpeechStarted {
        /// Where the voice began.
        start_ms: u64,
    },
    /// The voice paused for as long as the tail kept after speech: the
    /// utterance may be over. `audio` is exactly what `SpeechStopped` will
    /// carry if the silence lasts, so a transcript of it can be started now
    /// and used then (speculative STT). Sent at most once per pause, and
    /// only when the end-of-speech silence is longer than the tail.
    SpeechPaused {
        /// Where the last voiced frame ended.
        end_ms: u64,
        /// The utterance so far, with its prefix padding and tail, at 16 kHz.
        audio: Vec<f32>,
    },
    /// The utterance ended (silence, cap or flush).
    SpeechStopped {
        /// Where the voice began.
        start_ms: u64,
        /// Where the last voiced frame ended: the user stopped speaking here.
        end_ms: u64,
        /// The utterance with its prefix padding, at 16 kHz.
        audio: Vec<f32>,
    },
}

enum State {
    Idle,
    /// Voice heard but not yet long enough to count as speech.
    Pending {
        audio: Vec<f32>,
        start_frame: u64,
        voiced_frames: u64,
        gap_frames: u64,
    },
    Speaking {
        audio: Vec<f32>,
        start_frame: u64,
        /// Length of `audio` up to the end of the last voiced frame.
        voiced_len: usize,
        last_voiced_frame: u64,
        silence_frames: u64,
    },
}

/// Streaming detector: push 16 kHz audio of any chunk size, get events.
pub struct VoiceActivityDetector {
    detector: Box<earshot::Detector>,
    config: VadConfig,
    partial: Vec<f32>,
    /// Recent audio while idle, for the prefix padding.
    history: VecDeque<f32>,
    frames_seen: u64,
    state: State,
}

impl std::fmt::Debug for VoiceActivityDetector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VoiceActivityDetector")
            .field("config", &self.config)
            .field("frames_seen", &self.frames_seen)
            .field("speaking", &self.is_speaking())
            .finish()
    }
}

fn ms_to_frames(ms: u64) -> u64 {
    ms.div_ceil(FRAME_MS).max(1)
}

impl VoiceActivityDetector {
    /// A detector with `config`.
    pub fn new(config: VadConfig) -> Self {
        Self {
            detector: earshot::Detector::default_boxed(),
            config,
            partial: Vec::with_capacity(FRAME_SAMPLES),
            history: VecDeque::new(),
            frames_seen: 0,
            state: State::Idle,
        }
    }

    /// The configuration in use.
    pub fn config(&self) -> &VadConfig {
        &self.config
    }

    /// True between `SpeechStarted` and `SpeechStopped`.
    pub fn is_speaking(&self) -> bool {
        matches!(self.state, State::Speaking { .. })
    }

    /// True while voice has been heard and its utterance is not over
    /// (confirmed or not): a flush would end it.
    pub fn has_pending_speech(&self) -> bool {
        !matches!(self.state, State::Idle)
    }

    /// Stream position of the audio pushed so far, in milliseconds.
    pub fn position_ms(&self) -> u64 {
        self.frames_seen * FRAME_MS + duration_ms(self.partial.len(), INPUT_SAMPLE_RATE)
    }

    /// Feeds 16 kHz audio and returns the events it completed.
    pub fn push(&mut self, samples: &[f32]) -> Vec<VadEvent> {
        let mut events = Vec::new();
        let mut rest = samples;
        while !rest.is_empty() {
            let take = (FRAME_SAMPLES - self.partial.len()).min(rest.len());
            self.partial.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            if self.partial.len() == FRAME_SAMPLES {
                let frame = std::mem::take(&mut self.partial);
                self.process_frame(&frame, &mut events);
                self.partial = frame;
                self.partial.clear();
            }
        }
        events
    }

    /// Ends the input (the client stopped sending): a confirmed or long
    /// enough pending utterance is returned now instead of after the silence.
    pub fn flush(&mut self) -> Option<VadEvent> {
        let min_frames = ms_to_frames(self.config.min_speech_ms);
        let state = std::mem::replace(&mut self.state, State::Idle);
        self.history.clear();
        match state {
            State::Speaking {
                mut audio,
                start_frame,
                voiced_len,
                last_voiced_frame,
                ..
            } => {
                audio.truncate(voiced_len + crate::pcm::samples_for_ms(TAIL_MS, INPUT_SAMPLE_RATE));
                Some(VadEvent::SpeechStopped {
                    start_ms: start_frame * FRAME_MS,
                    end_ms: (last_voiced_frame + 1) * FRAME_MS,
                    audio,
                })
            }
            State::Pending {
                audio,
                start_frame,
                voiced_frames,
                gap_frames,
            } if voiced_frames >= min_frames => Some(VadEvent::SpeechStopped {
                start_ms: start_frame * FRAME_MS,
                end_ms: self.frames_seen.saturating_sub(gap_frames) * FRAME_MS,
                audio,
            }),
            _ => None,
        }
    }

    fn process_frame(&mut self, frame: &[f32], events: &mut Vec<VadEvent>) {
        // The detector asserts samples in [-1, 1]; clients control this
        // audio, so it is clamped (and NaN silenced) on the way in.
        let pcm: [i16; FRAME_SAMPLES] =
            std::array::from_fn(|i| frame.get(i).map_or(0, |&s| crate::pcm::sample_to_i16(s)));
        let score = self.detector.predict_i16(&pcm);
        let voiced = score.is_finite() && score >= self.config.threshold;
        let index = self.frames_seen;
        self.frames_seen += 1;
        let config = self.config;
        let state = std::mem::replace(&mut self.state, State::Idle);
        self.state = match state {
            State::Idle if voiced => {
                let mut audio: Vec<f32> = self.history.drain(..).collect();
                audio.extend_from_slice(frame);
                State::Pending {
                    audio,
                    start_frame: index,
                    voiced_frames: 1,
                    gap_frames: 0,
                }
            }
            State::Idle => {
                self.remember(frame);
                State::Idle
            }
            State::Pending {
                mut audio,
                start_frame,
                voiced_frames,
                gap_frames,
            } => {
                audio.extend_from_slice(frame);
                let (voiced_frames, gap_frames) = if voiced {
                    (voiced_frames + 1, 0)
                } else {
                    (voiced_frames, gap_frames + 1)
                };
                // A pending blip is forgotten after a short gap, shorter than
                // the end-of-speech silence, so two blips do not add up.
                let pending_gap = ms_to_frames(config.silence_duration_ms.min(200));
                if voiced_frames >= ms_to_frames(config.min_speech_ms) {
                    events.push(VadEvent::SpeechStarted {
                        start_ms: start_frame * FRAME_MS,
                    });
                    let voiced_len = audio.len();
                    State::Speaking {
                        audio,
                        start_frame,
                        voiced_len,
                        last_voiced_frame: index,
                        silence_frames: 0,
                    }
                } else if gap_frames >= pending_gap {
                    let keep =
                        crate::pcm::samples_for_ms(config.prefix_padding_ms, INPUT_SAMPLE_RATE);
                    let from = audio.len().saturating_sub(keep);
                    self.history.extend(&audio[from..]);
                    State::Idle
                } else {
                    State::Pending {
                        audio,
                        start_frame,
                        voiced_frames,
                        gap_frames,
                    }
                }
            }
            State::Speaking {
                mut audio,
                start_frame,
                mut voiced_len,
                mut last_voiced_frame,
                silence_frames,
            } => {
                audio.extend_from_slice(frame);
                let silence_frames = if voiced {
                    voiced_len = audio.len();
                    last_voiced_frame = index;
                    0
                } else {
                    silence_frames + 1
                };
                let too_long =
                    duration_ms(audio.len(), INPUT_SAMPLE_RATE) >= config.max_utterance_ms;
                let end_frames = ms_to_frames(config.silence_duration_ms);
                let tail_frames = ms_to_frames(TAIL_MS);
                let tail_samples = crate::pcm::samples_for_ms(TAIL_MS, INPUT_SAMPLE_RATE);
                if silence_frames == tail_frames && end_frames > tail_frames && !too_long {
                    events.push(VadEvent::SpeechPaused {
                        end_ms: (last_voiced_frame + 1) * FRAME_MS,
                        audio: audio[..(voiced_len + tail_samples).min(audio.len())].to_vec(),
                    });
                }
                if silence_frames >= end_frames || too_long {
                    let end = if too_long {
                        audio.len()
                    } else {
                        voiced_len + crate::pcm::samples_for_ms(TAIL_MS, INPUT_SAMPLE_RATE)
                    };
                    audio.truncate(end);
                    events.push(VadEvent::SpeechStopped {
                        start_ms: start_frame * FRAME_MS,
                        end_ms: (last_voiced_frame + 1) * FRAME_MS,
                        audio,
                    });
                    State::Idle
                } else {
                    State::Speaking {
                        audio,
                        start_frame,
                        voiced_len,
                        last_voiced_frame,
                        silence_frames,
                    }
                }
            }
        };
    }

    fn remember(&mut self, frame: &[f32]) {
        let keep = crate::pcm::samples_for_ms(self.config.prefix_padding_ms, INPUT_SAMPLE_RATE);
        self.history.extend(frame);
        while self.history.len() > keep {
            self.history.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic white noise (xorshift), no rand dependency.
    fn noise(samples: usize, amplitude: f32, seed: &mut u32) -> Vec<f32> {
        (0..samples)
            .map(|_| {
                *seed ^= *seed << 13;
                *seed ^= *seed >> 17;
                *seed ^= *seed << 5;
                (*seed as f32 / u32::MAX as f32 * 2.0 - 1.0) * amplitude
            })
            .collect()
    }

    #[test]
    fn silence_and_white_noise_are_not_speech() {
        let mut vad = VoiceActivityDetector::new(VadConfig::default());
        let mut seed = 7;
        let mut events = vad.push(&vec![0.0; 16_000]);
        events.extend(vad.push(&noise(32_000, 0.3, &mut seed)));
        assert!(events.is_empty(), "{events:?}");
        assert_eq!(vad.flush(), None);
        assert_eq!(vad.position_ms(), 3000);
    }

    #[test]
    fn empty_and_odd_sized_pushes_are_fine() {
        let mut vad = VoiceActivityDetector::new(VadConfig::default());
        assert!(vad.push(&[]).is_empty());
        assert!(vad.push(&[0.0; 100]).is_empty());
        assert!(vad.push(&[f32::NAN; 300]).is_empty());
        assert_eq!(vad.position_ms(), 25);
    }
}
