//! Barge-in: the user speaks over the reply, presses stop, or leaves. The
//! sound stops at once (unsent audio is dropped) and the stored reply is cut
//! to what the listener heard: right away when the generation is done, else
//! when its final message arrives (the reply task is told the cut, so it
//! usually stores it itself).

use std::time::Duration;

use colloquy_protocol::MessageStatus;
use tokio::{sync::broadcast::error::RecvError, time::Instant};
use uuid::Uuid;

use super::{Pipeline, VoiceOutput};

/// How long to wait for an interrupted reply's final message at the end.
const TRUNCATION_WAIT: Duration = Duration::from_secs(5);

impl Pipeline {
    /// The user spoke over the reply: stop it and keep only what was heard.
    pub(super) async fn interrupt(&mut self, tell_client: bool) {
        let Some(mut speech) = self.speech.take() else {
            return;
        };
        let now = Instant::now();
        let played_ms = speech.playback.heard_ms(now);
        self.meter_speech(played_ms).await;
        let heard = speech.playback.heard_text(played_ms);
        let reply_id = speech.reply_id;
        // A synthesis in flight finishes on its thread; its result is dropped.
        speech.synth.take();
        tracing::debug!(%reply_id, played_ms, "reply interrupted");
        if speech.generation_done {
            self.store_heard(reply_id, &heard).await;
        } else {
            self.truncations.insert(reply_id, heard.clone());
            self.deps
                .turns
                .cut_reply(self.channel.id, reply_id, heard.clone());
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

    /// A reply's final message. For a reply interrupted while it was
    /// generating, make sure what is stored is what was heard; any other
    /// goes on to be spoken to its end.
    pub(super) async fn on_reply_final(
        &mut self,
        reply_id: Uuid,
        content: &str,
        status: MessageStatus,
    ) {
        let Some(heard) = self.truncations.remove(&reply_id) else {
            return self.on_final(reply_id, content, status).await;
        };
        // The reply task stored the cut itself, unless it finished first.
        if status == MessageStatus::Interrupted && content == heard {
            return;
        }
        self.store_heard(reply_id, &heard).await;
    }

    async fn store_heard(&self, reply_id: Uuid, heard: &str) {
        if let Err(error) = self
            .deps
            .turns
            .truncate_spoken_reply(&self.channel, reply_id, heard)
            .await
        {
            tracing::error!(%error, "storing the heard part of a reply failed");
        }
    }

    /// The client left: a reply being spoken is cut to what was heard, as
    /// if interrupted, since the rest was never heard.
    pub(super) async fn shut_down(&mut self) {
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
}
