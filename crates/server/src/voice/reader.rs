//! The input side of a voice socket: binary frames of 16 kHz PCM16 mono,
//! held to a budget (audio faster than real time is allowed in bursts, a
//! client catching up, but not as a flood) and decoded to samples. The
//! seed's protocol has no JSON frames: text is ignored, not fatal.

use std::num::NonZeroU32;

use axum::{body::Bytes, extract::ws::Message};
use colloquy_voice::pcm::Pcm16Decoder;
use futures::{Sink, SinkExt};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use tokio::time::Instant;

use crate::{
    config::AudioConfig,
    socket::{self, close_code, Exit, Inbound, Wake},
};

/// 16 kHz mono PCM16.
const INPUT_BYTES_PER_SEC: f64 = 32_000.0;

/// One frame of the client's audio.
pub(super) struct Audio {
    /// As received.
    pub bytes: Bytes,
    /// Decoded, at 16 kHz.
    pub samples: Vec<f32>,
}

/// Reads one voice socket's audio.
pub(super) struct AudioReader {
    budget: AudioBudget,
    frames: DefaultDirectRateLimiter,
    decoder: Pcm16Decoder,
}

impl AudioReader {
    /// A full budget, sized by the `audio` settings.
    pub(super) fn new(audio: &AudioConfig) -> Self {
        let frames = Quota::per_second(
            NonZeroU32::new(audio.max_frames_per_second).unwrap_or(NonZeroU32::MIN),
        );
        Self {
            budget: AudioBudget::new(audio),
            frames: RateLimiter::direct(frames),
            decoder: Pcm16Decoder::default(),
        }
    }

    /// What a wake-up of the socket loop means here: audio, nothing to do
    /// (a ping sent on `sink`, a control or text frame), or the end of the
    /// loop (1008 for audio past the budget).
    pub(super) async fn on_wake<S>(
        &mut self,
        wake: Wake,
        sink: &mut S,
    ) -> Result<Option<Audio>, Exit>
    where
        S: Sink<Message> + Unpin,
    {
        let frame = match wake {
            Wake::Exit(exit) => return Err(exit),
            Wake::Ping => {
                return match sink.send(Message::Ping(Default::default())).await {
                    Ok(()) => Ok(None),
                    Err(_) => Err(Exit::PeerGone),
                };
            }
            Wake::Frame(frame) => frame,
        };
        // Tiny frames can flood the loop without breaking the byte budget.
        if self.frames.check().is_err() {
            return Err(Exit::close(close_code::POLICY, "frame rate limit exceeded"));
        }
        match socket::inbound(frame)? {
            Inbound::Binary(bytes) => {
                if !self.budget.take(bytes.len()) {
                    return Err(Exit::close(close_code::POLICY, "audio rate limit exceeded"));
                }
                let samples = self.decoder.push(&bytes);
                Ok(Some(Audio { bytes, samples }))
            }
            Inbound::Text(_) => {
                tracing::debug!("text frame ignored on the voice socket");
                Ok(None)
            }
            Inbound::Control => Ok(None),
        }
    }
}

/// Token bucket over input bytes, counted as 16 kHz PCM16 whatever the
/// transport (binary frames, or JSON `audio` events once decoded).
/// Both limits are settings: `audio.input_burst_secs` (audio a client may
/// send ahead of real time, e.g. after a stall) and `audio.max_input_speed`
/// (the long-run rate, as a multiple of real time).
pub(crate) struct AudioBudget {
    tokens: f64,
    capacity: f64,
    refill_per_sec: f64,
    last: Instant,
}

impl AudioBudget {
    /// A full bucket, sized by the `audio` settings.
    pub(crate) fn new(audio: &AudioConfig) -> Self {
        let capacity = audio.input_burst_secs * INPUT_BYTES_PER_SEC;
        Self {
            tokens: capacity,
            capacity,
            refill_per_sec: audio.max_input_speed * INPUT_BYTES_PER_SEC,
            last: Instant::now(),
        }
    }

    /// Spend `bytes`; `false` once the socket has sent more than it may.
    pub(crate) fn take(&mut self, bytes: usize) -> bool {
        let now = Instant::now();
        let refill = (now - self.last).as_secs_f64() * self.refill_per_sec;
        self.tokens = (self.tokens + refill).min(self.capacity);
        self.last = now;
        self.tokens -= bytes as f64;
        self.tokens >= 0.0
    }
}
