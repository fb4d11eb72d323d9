//! Subscriptions and fan-out. Each live conversation has one
//! [`ConversationChannel`]: it numbers the conversation's events (`seq`),
//! serializes each event to JSON once, and broadcasts it to every socket and
//! HTTP stream subscribed to it. Channels exist only while someone holds a
//! [`ChannelHandle`]; the next one starts numbering from the stored `last_seq`.
//!
//! Each channel keeps its newest events in a bounded ring so a client that
//! reconnects can be given exactly what it missed ([`ConversationChannel::subscribe_after`]).
//! A channel nobody holds lingers for [`ChannelSizes::linger`] before it is
//! dropped, so a client that reconnects within that time still gets an exact
//! replay from memory rather than the stored messages.
//!
//! In cluster mode a [`Relay`] carries every event to the other nodes and
//! theirs to this one, so each node's channel of a conversation holds the
//! same events under the same seqs.

mod channel;
mod registry;
mod relay;
mod user;

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use axum::extract::ws::Utf8Bytes;
use colloquy_protocol::{Seq, ServerEvent};
use uuid::Uuid;

pub use channel::{ConversationChannel, Replay, Subscription, Unstored};
pub use registry::ChannelHandle;
pub use relay::{Relay, Relayed};
pub use user::UserSubscription;

use registry::{Channels, Entry};
use user::UserChannel;

/// An event as published: typed for in-process readers, JSON for sockets.
#[derive(Debug)]
pub struct Published {
    pub event: ServerEvent,
    pub json: Utf8Bytes,
}

impl Published {
    pub(crate) fn new(event: ServerEvent) -> Self {
        // Serializing a plain enum of strings and numbers cannot fail.
        let json = serde_json::to_string(&event).unwrap_or_default();
        Self {
            event,
            json: json.into(),
        }
    }

    /// An event as another node sent it; `None` when it is not one.
    pub fn decode(json: &[u8]) -> Option<Self> {
        let event = serde_json::from_slice(json).ok()?;
        let json = std::str::from_utf8(json).ok()?.to_owned();
        Some(Self {
            event,
            json: json.into(),
        })
    }
}

/// Registry of live conversation channels and per-user channels.
pub struct Hub {
    channels: Mutex<Channels>,
    users: Mutex<HashMap<Uuid, UserChannel>>,
    sizes: ChannelSizes,
    /// Cluster mode: carries events to and from the other nodes.
    relay: Option<Arc<dyn Relay>>,
}

/// Per-channel buffer sizes.
#[derive(Debug, Clone, Copy)]
pub struct ChannelSizes {
    /// Events a subscriber may fall behind before it is cut off.
    pub subscriber_buffer: usize,
    /// Newest events kept for replay to reconnecting clients.
    pub replay_events: usize,
    /// How long a channel no one holds is kept (with its ring) before it is dropped.
    pub linger: Duration,
    /// Most events one resume replays; beyond it the client must resync.
    pub max_replay: usize,
}

impl Hub {
    /// A hub whose channels use `sizes`.
    pub fn new(sizes: ChannelSizes) -> Arc<Self> {
        Self::with_relay(sizes, None)
    }

    /// A hub of one node of a cluster, whose events `relay` carries (none: a single node).
    pub fn with_relay(sizes: ChannelSizes, relay: Option<Arc<dyn Relay>>) -> Arc<Self> {
        Arc::new(Self {
            channels: Mutex::new(Channels {
                entries: HashMap::new(),
                last_sweep: Instant::now(),
            }),
            users: Mutex::new(HashMap::new()),
            sizes,
            relay,
        })
    }

    /// Subscribe to events for all of `user`'s sockets.
    pub fn subscribe_user(self: &Arc<Self>, user: Uuid) -> UserSubscription {
        let mut users = lock(&self.users);
        let channel = users.entry(user).or_insert_with(UserChannel::new);
        channel.subscribers += 1;
        UserSubscription {
            events: channel.sender.subscribe(),
            hub: self.clone(),
            user,
        }
    }

    /// Send `event` to every socket of `user`, on every node (none listening is fine).
    pub fn publish_to_user(&self, user: Uuid, event: ServerEvent) {
        let published = Arc::new(Published::new(event));
        if let Some(relay) = &self.relay {
            relay.publish_to_user(user, &published);
        }
        self.deliver_to_user(user, published);
    }

    /// Send an event to `user`'s sockets on this node only (one another node sent).
    pub fn deliver_to_user(&self, user: Uuid, published: Arc<Published>) {
        if let Some(channel) = lock(&self.users).get(&user) {
            let _ = channel.sender.send(published);
        }
    }

    /// The in-memory channel of conversation `id`, held or lingering,
    /// without holding it (cluster mode feeds it other nodes' events).
    pub fn lookup(&self, id: Uuid) -> Option<Arc<ConversationChannel>> {
        lock(&self.channels)
            .entries
            .get(&id)
            .map(|entry| entry.channel.clone())
    }

    /// How many users have a subscribed socket (for leak tests).
    pub fn live_users(&self) -> usize {
        lock(&self.users).len()
    }

    /// The channel of conversation `id` (owned by `owner`), created if
    /// needed with numbering continuing after `stored_last_seq` (ignored
    /// when it already exists).
    pub fn channel(self: &Arc<Self>, id: Uuid, owner: Uuid, stored_last_seq: Seq) -> ChannelHandle {
        let mut channels = lock(&self.channels);
        channels.sweep(self.sizes.linger);
        if let Some(handle) = channels.handle(self, id) {
            return handle;
        }
        let channel = Arc::new(ConversationChannel::new(
            id,
            owner,
            stored_last_seq,
            None,
            self.sizes,
            self.relay.clone(),
        ));
        channels.entries.insert(id, Entry::held(channel.clone()));
        ChannelHandle {
            hub: self.clone(),
            channel,
        }
    }

    /// The channel of conversation `id` for `owner`, which has no stored row
    /// yet: the live one if `owner` holds it (stored by now or not), else a
    /// new one that stores `unstored` with its first message. `None` when
    /// another user holds a channel with this id: one id, one owner, even
    /// before anything is stored.
    pub fn claim(
        self: &Arc<Self>,
        id: Uuid,
        owner: Uuid,
        unstored: Unstored,
    ) -> Option<ChannelHandle> {
        let mut channels = lock(&self.channels);
        channels.sweep(self.sizes.linger);
        if let Some(entry) = channels.entries.get(&id) {
            if entry.channel.owner != owner {
                return None;
            }
            return channels.handle(self, id);
        }
        let channel = Arc::new(ConversationChannel::new(
            id,
            owner,
            0,
            Some(unstored),
            self.sizes,
            self.relay.clone(),
        ));
        channels.entries.insert(id, Entry::held(channel.clone()));
        Some(ChannelHandle {
            hub: self.clone(),
            channel,
        })
    }

    /// The channel of conversation `id` if it is in memory.
    pub fn live(self: &Arc<Self>, id: Uuid) -> Option<ChannelHandle> {
        lock(&self.channels).handle(self, id)
    }

    /// Drop the channel of a deleted conversation at once (holders keep their copy).
    pub fn forget(&self, id: Uuid) {
        lock(&self.channels).entries.remove(&id);
    }

    /// How many conversations someone holds (for metrics and leak tests).
    pub fn live_channels(&self) -> usize {
        let channels = lock(&self.channels);
        channels
            .entries
            .values()
            .filter(|e| e.idle_since.is_none())
            .count()
    }

    /// How many channels are in memory, lingering ones included.
    pub fn retained_channels(&self) -> usize {
        lock(&self.channels).entries.len()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding these short critical sections leaves plain data
    // behind; carrying on is safer than poisoning every later request.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// What the hub's unit tests share.
#[cfg(test)]
mod testing {
    use std::time::Duration;

    use colloquy_protocol::{Seq, ServerEvent};
    use uuid::Uuid;

    use super::ChannelSizes;

    /// Small buffers, no linger.
    pub(super) const SIZES: ChannelSizes = ChannelSizes {
        subscriber_buffer: 16,
        replay_events: 4,
        linger: Duration::ZERO,
        max_replay: 64,
    };

    /// A one-character delta of reply nil at `seq`.
    pub(super) fn delta(seq: Seq) -> Result<ServerEvent, std::convert::Infallible> {
        Ok(ServerEvent::Delta {
            message_id: Uuid::nil(),
            seq,
            content: "x".into(),
        })
    }
}
