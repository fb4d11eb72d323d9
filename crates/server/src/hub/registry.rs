//! The registry's bookkeeping: which conversation channels are held, and
//! for how long an unheld one lingers with its replay ring.

use std::{
    collections::HashMap,
    ops::Deref,
    sync::Arc,
    time::{Duration, Instant},
};

use uuid::Uuid;

use super::{lock, ConversationChannel, Hub};

pub(super) struct Entry {
    pub(super) channel: Arc<ConversationChannel>,
    /// Live [`ChannelHandle`]s. Counted here, under the registry's lock, and
    /// not read from the `Arc`'s strong count: that count changes outside
    /// the lock, so two handles dropping at once could each see the other
    /// and neither would retire the channel.
    pub(super) holders: usize,
    /// When the last handle was dropped; `None` while someone holds one.
    pub(super) idle_since: Option<Instant>,
}

impl Entry {
    /// An entry held by the one handle being created.
    pub(super) fn held(channel: Arc<ConversationChannel>) -> Self {
        Self {
            channel,
            holders: 1,
            idle_since: None,
        }
    }
}

pub(super) struct Channels {
    pub(super) entries: HashMap<Uuid, Entry>,
    pub(super) last_sweep: Instant,
}

/// How often idle channels are looked for, at most.
const SWEEP_EVERY: Duration = Duration::from_secs(1);

impl Channels {
    /// Drop channels idle for longer than `linger` (at most once per [`SWEEP_EVERY`]).
    pub(super) fn sweep(&mut self, linger: Duration) {
        if self.last_sweep.elapsed() < SWEEP_EVERY {
            return;
        }
        self.last_sweep = Instant::now();
        self.entries.retain(|_, entry| {
            entry
                .idle_since
                .is_none_or(|since| since.elapsed() < linger)
        });
    }

    pub(super) fn handle(&mut self, hub: &Arc<Hub>, id: Uuid) -> Option<ChannelHandle> {
        let entry = self.entries.get_mut(&id)?;
        entry.idle_since = None;
        entry.holders += 1;
        Some(ChannelHandle {
            hub: hub.clone(),
            channel: entry.channel.clone(),
        })
    }

    /// The entry of this very channel (not of a newer one with its id,
    /// made after it was forgotten).
    fn entry_of(&mut self, channel: &Arc<ConversationChannel>) -> Option<&mut Entry> {
        self.entries
            .get_mut(&channel.id)
            .filter(|entry| Arc::ptr_eq(&entry.channel, channel))
    }
}

/// A counted reference to a live channel; the last one dropped retires it.
pub struct ChannelHandle {
    pub(super) hub: Arc<Hub>,
    pub(super) channel: Arc<ConversationChannel>,
}

impl Clone for ChannelHandle {
    fn clone(&self) -> Self {
        if let Some(entry) = lock(&self.hub.channels).entry_of(&self.channel) {
            entry.holders += 1;
        }
        Self {
            hub: self.hub.clone(),
            channel: self.channel.clone(),
        }
    }
}

impl ChannelHandle {
    /// Send `event` to every socket of the conversation's owner (not part
    /// of the conversation's log: `conversation` list hints).
    pub fn tell_owner(&self, event: colloquy_protocol::ServerEvent) {
        self.hub.publish_to_user(self.channel.owner, event);
    }
}

impl Deref for ChannelHandle {
    type Target = ConversationChannel;
    fn deref(&self) -> &ConversationChannel {
        &self.channel
    }
}

impl Drop for ChannelHandle {
    fn drop(&mut self) {
        let mut channels = lock(&self.hub.channels);
        let linger = self.hub.sizes.linger;
        if let Some(entry) = channels.entry_of(&self.channel) {
            entry.holders = entry.holders.saturating_sub(1);
            if entry.holders == 0 {
                if linger.is_zero() {
                    channels.entries.remove(&self.channel.id);
                } else {
                    entry.idle_since = Some(Instant::now());
                }
            }
        }
        channels.sweep(linger);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hub::{
        testing::{delta, SIZES},
        ChannelSizes,
    };

    #[tokio::test]
    async fn channel_is_retired_when_its_last_handle_drops() {
        let hub = Hub::new(SIZES);
        let first = hub.channel(Uuid::nil(), Uuid::nil(), 0);
        let second = hub.channel(Uuid::nil(), Uuid::nil(), 99);
        first
            .publish(|seq| async move { delta(seq) })
            .await
            .unwrap();
        assert_eq!(
            second.subscribe().await.0,
            1,
            "second handle shares the channel"
        );
        drop(first);
        assert_eq!(hub.live_channels(), 1);
        drop(second);
        assert_eq!(hub.live_channels(), 0);
    }

    #[tokio::test]
    async fn an_unheld_channel_lingers_with_its_ring_then_goes() {
        let hub = Hub::new(ChannelSizes {
            linger: Duration::from_millis(50),
            max_replay: 64,
            ..SIZES
        });
        let channel = hub.channel(Uuid::nil(), Uuid::nil(), 0);
        channel
            .publish(|seq| async move { delta(seq) })
            .await
            .unwrap();
        drop(channel);
        assert_eq!((hub.live_channels(), hub.retained_channels()), (0, 1));
        let again = hub.channel(Uuid::nil(), Uuid::nil(), 0);
        assert_eq!(again.subscribe().await.0, 1, "numbering and ring survived");
        drop(again);
        std::thread::sleep(Duration::from_millis(1100));
        drop(hub.channel(Uuid::from_u128(7), Uuid::nil(), 0)); // any access sweeps
        assert_eq!(hub.retained_channels(), 1, "only the new one is left");
    }

    #[test]
    fn handles_dropped_at_once_from_many_threads_retire_every_channel() {
        let hub = Hub::new(SIZES);
        for round in 0..2000u128 {
            let first = hub.channel(Uuid::from_u128(round), Uuid::nil(), 0);
            let second = first.clone();
            let third = hub.channel(Uuid::from_u128(round), Uuid::nil(), 0);
            let barrier = Arc::new(std::sync::Barrier::new(3));
            let threads: Vec<_> = [first, second, third]
                .into_iter()
                .map(|handle| {
                    let barrier = barrier.clone();
                    std::thread::spawn(move || {
                        barrier.wait();
                        drop(handle);
                    })
                })
                .collect();
            for thread in threads {
                thread.join().expect("dropping thread");
            }
        }
        assert_eq!(hub.live_channels(), 0);
        assert_eq!(hub.retained_channels(), 0);
    }
}
