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

use std::{
    collections::{HashMap, VecDeque},
    future::Future,
    ops::Deref,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use axum::extract::ws::Utf8Bytes;
use colloquy_protocol::{Seq, ServerEvent};
use tokio::sync::{broadcast, MutexGuard};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// An event as published: typed for in-process readers, JSON for sockets.
#[derive(Debug)]
pub struct Published {
    pub event: ServerEvent,
    pub json: Utf8Bytes,
}

impl Published {
    fn new(event: ServerEvent) -> Self {
        // Serializing a plain enum of strings and numbers cannot fail.
        let json = serde_json::to_string(&event).unwrap_or_default();
        Self {
            event,
            json: json.into(),
        }
    }
}

/// Registry of live conversation channels and per-user channels.
pub struct Hub {
    channels: Mutex<Channels>,
    users: Mutex<HashMap<Uuid, broadcast::Sender<Arc<Published>>>>,
    sizes: ChannelSizes,
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
}

struct Entry {
    channel: Arc<ConversationChannel>,
    /// When the last handle was dropped; `None` while someone holds one.
    idle_since: Option<Instant>,
}

struct Channels {
    entries: HashMap<Uuid, Entry>,
    last_sweep: Instant,
}

/// Per-user events (conversation list changes) are rare; the channel's slots
/// are preallocated per signed-in user, so keep it small.
const USER_EVENTS_BUFFER: usize = 32;

/// How often idle channels are looked for, at most.
const SWEEP_EVERY: Duration = Duration::from_secs(1);

impl Channels {
    /// Drop channels idle for longer than `linger` (at most once per [`SWEEP_EVERY`]).
    fn sweep(&mut self, linger: Duration) {
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

    fn handle(&mut self, hub: &Arc<Hub>, id: Uuid) -> Option<ChannelHandle> {
        let entry = self.entries.get_mut(&id)?;
        entry.idle_since = None;
        Some(ChannelHandle {
            hub: hub.clone(),
            channel: entry.channel.clone(),
        })
    }
}

impl Hub {
    /// A hub whose channels use `sizes`.
    pub fn new(sizes: ChannelSizes) -> Arc<Self> {
        Arc::new(Self {
            channels: Mutex::new(Channels {
                entries: HashMap::new(),
                last_sweep: Instant::now(),
            }),
            users: Mutex::new(HashMap::new()),
            sizes,
        })
    }

    /// Subscribe to events for all of `user`'s sockets.
    pub fn subscribe_user(self: &Arc<Self>, user: Uuid) -> UserSubscription {
        let mut users = lock(&self.users);
        let sender = users
            .entry(user)
            .or_insert_with(|| broadcast::channel(USER_EVENTS_BUFFER).0);
        UserSubscription {
            events: sender.subscribe(),
            hub: self.clone(),
            user,
        }
    }

    /// Send `event` to every socket of `user` (none listening is fine).
    pub fn publish_to_user(&self, user: Uuid, event: ServerEvent) {
        if let Some(sender) = lock(&self.users).get(&user) {
            let _ = sender.send(Arc::new(Published::new(event)));
        }
    }

    /// How many users have a subscribed socket (for leak tests).
    pub fn live_users(&self) -> usize {
        lock(&self.users).len()
    }

    /// The channel of conversation `id`, created if needed with numbering
    /// continuing after `stored_last_seq` (ignored when it already exists).
    pub fn channel(self: &Arc<Self>, id: Uuid, stored_last_seq: Seq) -> ChannelHandle {
        let mut channels = lock(&self.channels);
        channels.sweep(self.sizes.linger);
        if let Some(handle) = channels.handle(self, id) {
            return handle;
        }
        let channel = Arc::new(ConversationChannel::new(id, stored_last_seq, self.sizes));
        channels.entries.insert(
            id,
            Entry {
                channel: channel.clone(),
                idle_since: None,
            },
        );
        ChannelHandle {
            hub: self.clone(),
            channel,
        }
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

/// A socket's subscription to its user's events; the last one dropped
/// retires the user's channel.
pub struct UserSubscription {
    pub events: broadcast::Receiver<Arc<Published>>,
    hub: Arc<Hub>,
    user: Uuid,
}

impl Drop for UserSubscription {
    fn drop(&mut self) {
        let mut users = lock(&self.hub.users);
        // Subscriptions are only made under this lock: one receiver left is ours.
        if users
            .get(&self.user)
            .is_some_and(|s| s.receiver_count() <= 1)
        {
            users.remove(&self.user);
        }
    }
}

/// A counted reference to a live channel; the last one dropped retires it.
pub struct ChannelHandle {
    hub: Arc<Hub>,
    channel: Arc<ConversationChannel>,
}

impl Clone for ChannelHandle {
    fn clone(&self) -> Self {
        Self {
            hub: self.hub.clone(),
            channel: self.channel.clone(),
        }
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
        let id = self.channel.id;
        // Handles are only created under this lock, so the count is exact:
        // the map's reference plus ours means we are the last handle.
        let last = Arc::strong_count(&self.channel) == 2;
        let ours = channels
            .entries
            .get(&id)
            .is_some_and(|entry| Arc::ptr_eq(&entry.channel, &self.channel));
        if last && ours {
            if linger.is_zero() {
                channels.entries.remove(&id);
            } else if let Some(entry) = channels.entries.get_mut(&id) {
                entry.idle_since = Some(Instant::now());
            }
        }
        channels.sweep(linger);
    }
}

/// One conversation's event numbering, fan-out, replay ring and in-flight replies.
pub struct ConversationChannel {
    pub id: Uuid,
    log: tokio::sync::Mutex<Log>,
    sender: broadcast::Sender<Arc<Published>>,
    turn: tokio::sync::Mutex<()>,
    replies: Mutex<Vec<(Uuid, CancellationToken)>>,
    /// Text to store instead of the generated one for replies cut by a
    /// barge-in: what the listener heard.
    cuts: Mutex<Vec<(Uuid, String)>>,
}

/// The numbering state, guarded together so that publishing, replaying and
/// subscribing see one consistent order.
struct Log {
    last_seq: Seq,
    ring: VecDeque<Arc<Published>>,
    ring_capacity: usize,
    /// Replies still streaming, with the seq of their first delta.
    streaming: HashMap<Uuid, Seq>,
}

impl Log {
    fn record(&mut self, published: &Arc<Published>) {
        match &published.event {
            ServerEvent::Delta {
                message_id, seq, ..
            } => {
                self.streaming.entry(*message_id).or_insert(*seq);
            }
            ServerEvent::Message { message_id, .. } => {
                self.streaming.remove(message_id);
            }
            _ => {}
        }
        if self.ring.len() == self.ring_capacity {
            self.ring.pop_front();
        }
        self.ring.push_back(published.clone());
    }

    fn oldest_in_ring(&self) -> Option<Seq> {
        self.ring.front().and_then(|p| p.event.seq())
    }
}

/// What a subscriber that asked to resume gets before the live events.
pub enum Replay {
    /// Events after the requested seq, in order (possibly none).
    Events(Vec<Arc<Published>>),
    /// The gap cannot be replayed exactly: the client must reload the conversation.
    ResyncRequired,
}

/// A new subscription: the head of the log when it started, what to replay, and the live events.
pub struct Subscription {
    pub last_seq: Seq,
    pub replay: Replay,
    pub events: broadcast::Receiver<Arc<Published>>,
}

impl ConversationChannel {
    fn new(id: Uuid, last_seq: Seq, sizes: ChannelSizes) -> Self {
        let (sender, _) = broadcast::channel(sizes.subscriber_buffer);
        Self {
            id,
            log: tokio::sync::Mutex::new(Log {
                last_seq,
                ring: VecDeque::with_capacity(sizes.replay_events.min(64)),
                ring_capacity: sizes.replay_events.max(1),
                streaming: HashMap::new(),
            }),
            sender,
            turn: tokio::sync::Mutex::new(()),
            replies: Mutex::new(Vec::new()),
            cuts: Mutex::new(Vec::new()),
        }
    }

    /// Subscribe, returning the seq of the last event published before the
    /// subscription: every later event arrives through the receiver.
    pub async fn subscribe(&self) -> (Seq, broadcast::Receiver<Arc<Published>>) {
        let log = self.log.lock().await;
        (log.last_seq, self.sender.subscribe())
    }

    /// Subscribe and get every event after `after` exactly once, in order:
    /// from the ring when it reaches back far enough; otherwise the stored
    /// events that `load_stored` returns (finished messages, which supersede
    /// their deltas) merged with the ring's deltas of replies still streaming.
    /// Nothing is published meanwhile, so replay and live events neither
    /// overlap nor leave a gap.
    pub async fn subscribe_after<F, Fut, E>(
        &self,
        after: Seq,
        load_stored: F,
    ) -> Result<Subscription, E>
    where
        F: FnOnce(Seq) -> Fut,
        Fut: Future<Output = Result<Vec<ServerEvent>, E>>,
    {
        let log = self.log.lock().await;
        let events = self.sender.subscribe();
        let last_seq = log.last_seq;
        let subscription = |replay| Subscription {
            last_seq,
            replay,
            events,
        };
        if after > last_seq {
            return Ok(subscription(Replay::ResyncRequired));
        }
        if after == last_seq {
            return Ok(subscription(Replay::Events(Vec::new())));
        }
        let ring_reaches = log
            .oldest_in_ring()
            .is_some_and(|oldest| oldest <= after + 1);
        if ring_reaches {
            let replay = log
                .ring
                .iter()
                .filter(|p| p.event.seq().is_some_and(|seq| seq > after))
                .cloned()
                .collect();
            return Ok(subscription(Replay::Events(replay)));
        }
        // Deltas of a still-streaming reply exist only in the ring: all of
        // those after `after` must still be there.
        let deltas_kept = log.streaming.values().all(|first| {
            let needed_from = (*first).max(after + 1);
            log.oldest_in_ring()
                .is_some_and(|oldest| oldest <= needed_from)
        });
        if !deltas_kept {
            return Ok(subscription(Replay::ResyncRequired));
        }
        let mut replay: Vec<Arc<Published>> = load_stored(after)
            .await?
            .into_iter()
            .filter(|event| {
                event
                    .seq()
                    .is_some_and(|seq| seq > after && seq <= last_seq)
            })
            .map(|event| Arc::new(Published::new(event)))
            .collect();
        replay.extend(
            log.ring
                .iter()
                .filter(|p| match &p.event {
                    ServerEvent::Delta {
                        message_id, seq, ..
                    } => *seq > after && log.streaming.contains_key(message_id),
                    _ => false,
                })
                .cloned(),
        );
        replay.sort_by_key(|p| p.event.seq());
        Ok(subscription(Replay::Events(replay)))
    }

    /// Publish the event `make` builds for the next seq. `make` may store it
    /// first: numbering is held until it returns, so events leave in seq
    /// order, and a failed `make` consumes no seq.
    pub async fn publish<F, Fut, E>(&self, make: F) -> Result<Arc<Published>, E>
    where
        F: FnOnce(Seq) -> Fut,
        Fut: Future<Output = Result<ServerEvent, E>>,
    {
        let mut log = self.log.lock().await;
        let seq = log.last_seq + 1;
        let published = Arc::new(Published::new(make(seq).await?));
        log.last_seq = seq;
        log.record(&published);
        // No subscriber is fine: the event is still numbered and stored.
        let _ = self.sender.send(published.clone());
        Ok(published)
    }

    /// Wait for this conversation's previous reply to finish; replies run one at a time.
    pub async fn turn_lock(&self) -> MutexGuard<'_, ()> {
        self.turn.lock().await
    }

    /// Track a pending or running reply so `stop` can cancel it.
    pub fn register_reply(&self, reply_id: Uuid, cancel: CancellationToken) {
        lock(&self.replies).push((reply_id, cancel));
    }

    /// Forget a reply that has ended.
    pub fn finish_reply(&self, reply_id: Uuid) {
        lock(&self.replies).retain(|(id, _)| *id != reply_id);
    }

    /// Stop a reply the listener interrupted and have it stored as `heard`
    /// (the reply task takes it with [`ConversationChannel::take_cut`]).
    /// False when the reply already ended: the caller cuts the stored one.
    pub fn cut_reply(&self, reply_id: Uuid, heard: String) -> bool {
        lock(&self.cuts).push((reply_id, heard));
        self.cancel_reply(reply_id)
    }

    /// The text a barge-in left for `reply_id`, if any (once).
    pub fn take_cut(&self, reply_id: Uuid) -> Option<String> {
        let mut cuts = lock(&self.cuts);
        let index = cuts.iter().position(|(id, _)| *id == reply_id)?;
        Some(cuts.swap_remove(index).1)
    }

    /// Cancel one pending or running reply; false when it already ended.
    pub fn cancel_reply(&self, reply_id: Uuid) -> bool {
        let replies = lock(&self.replies);
        let found = replies.iter().find(|(id, _)| *id == reply_id);
        if let Some((_, cancel)) = found {
            cancel.cancel();
        }
        found.is_some()
    }

    /// Cancel every pending and running reply; returns how many there were.
    pub fn cancel_replies(&self) -> usize {
        let replies = lock(&self.replies);
        for (_, cancel) in replies.iter() {
            cancel.cancel();
        }
        replies.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SIZES: ChannelSizes = ChannelSizes {
        subscriber_buffer: 16,
        replay_events: 4,
        linger: Duration::ZERO,
    };

    fn delta(seq: Seq) -> Result<ServerEvent, std::convert::Infallible> {
        Ok(ServerEvent::Delta {
            message_id: Uuid::nil(),
            seq,
            content: "x".into(),
        })
    }

    #[tokio::test]
    async fn events_are_numbered_from_the_stored_seq_and_fanned_out() {
        let hub = Hub::new(SIZES);
        let channel = hub.channel(Uuid::nil(), 41);
        let (last, mut first) = channel.subscribe().await;
        let (_, mut second) = channel.subscribe().await;
        assert_eq!(last, 41);
        channel
            .publish(|seq| async move { delta(seq) })
            .await
            .unwrap();
        assert_eq!(first.recv().await.unwrap().event.seq(), Some(42));
        assert_eq!(second.recv().await.unwrap().event.seq(), Some(42));
    }

    #[tokio::test]
    async fn failed_publish_consumes_no_seq() {
        let hub = Hub::new(SIZES);
        let channel = hub.channel(Uuid::nil(), 0);
        let failed: Result<_, &str> = channel.publish(|_| async { Err("disk full") }).await;
        assert!(failed.is_err());
        let published = channel
            .publish(|seq| async move { delta(seq) })
            .await
            .unwrap();
        assert_eq!(published.event.seq(), Some(1));
    }

    #[tokio::test]
    async fn channel_is_retired_when_its_last_handle_drops() {
        let hub = Hub::new(SIZES);
        let first = hub.channel(Uuid::nil(), 0);
        let second = hub.channel(Uuid::nil(), 99);
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

    fn delta_of(reply: u128, seq: Seq) -> Result<ServerEvent, std::convert::Infallible> {
        Ok(ServerEvent::Delta {
            message_id: Uuid::from_u128(reply),
            seq,
            content: format!("d{seq}"),
        })
    }

    fn final_of(reply: u128, seq: Seq) -> ServerEvent {
        ServerEvent::Message {
            message_id: Uuid::from_u128(reply),
            seq,
            content: "whole".into(),
            sender: colloquy_protocol::Sender::Assistant,
            status: colloquy_protocol::MessageStatus::Complete,
            is_final: true,
        }
    }

    fn seqs(replay: &Replay) -> Vec<Seq> {
        match replay {
            Replay::Events(events) => events.iter().filter_map(|p| p.event.seq()).collect(),
            Replay::ResyncRequired => panic!("expected events"),
        }
    }

    async fn no_store(_: Seq) -> Result<Vec<ServerEvent>, std::convert::Infallible> {
        Ok(Vec::new())
    }

    #[tokio::test]
    async fn resume_within_the_ring_replays_exactly_what_was_missed() {
        let hub = Hub::new(SIZES);
        let channel = hub.channel(Uuid::nil(), 0);
        for _ in 0..3 {
            channel
                .publish(|seq| async move { delta_of(1, seq) })
                .await
                .unwrap();
        }
        let subscription = channel.subscribe_after(1, no_store).await.unwrap();
        assert_eq!(subscription.last_seq, 3);
        assert_eq!(seqs(&subscription.replay), [2, 3]);
        let caught_up = channel.subscribe_after(3, no_store).await.unwrap();
        assert!(seqs(&caught_up.replay).is_empty());
    }

    #[tokio::test]
    async fn an_unheld_channel_lingers_with_its_ring_then_goes() {
        let hub = Hub::new(ChannelSizes {
            linger: Duration::from_millis(50),
            ..SIZES
        });
        let channel = hub.channel(Uuid::nil(), 0);
        channel
            .publish(|seq| async move { delta_of(1, seq) })
            .await
            .unwrap();
        drop(channel);
        assert_eq!((hub.live_channels(), hub.retained_channels()), (0, 1));
        let again = hub.channel(Uuid::nil(), 0);
        assert_eq!(again.subscribe().await.0, 1, "numbering and ring survived");
        drop(again);
        std::thread::sleep(Duration::from_millis(1100));
        drop(hub.channel(Uuid::from_u128(7), 0)); // any access sweeps
        assert_eq!(hub.retained_channels(), 1, "only the new one is left");
    }

    #[tokio::test]
    async fn resume_from_the_future_requires_a_resync() {
        let hub = Hub::new(SIZES);
        let channel = hub.channel(Uuid::nil(), 5);
        let subscription = channel.subscribe_after(9, no_store).await.unwrap();
        assert!(matches!(subscription.replay, Replay::ResyncRequired));
    }

    #[tokio::test]
    async fn older_gaps_merge_stored_messages_with_streaming_deltas() {
        let hub = Hub::new(SIZES);
        let channel = hub.channel(Uuid::nil(), 0);
        // Reply 1 streams seq 1..=3 and ends at 4; reply 2 streams from 5.
        for _ in 0..3 {
            channel
                .publish(|seq| async move { delta_of(1, seq) })
                .await
                .unwrap();
        }
        channel
            .publish(|seq| async move { Ok::<_, std::convert::Infallible>(final_of(1, seq)) })
            .await
            .unwrap();
        for _ in 0..3 {
            channel
                .publish(|seq| async move { delta_of(2, seq) })
                .await
                .unwrap();
        }
        // The ring (4 events) now holds 4..=7; a client at 1 needs storage.
        let stored = |after: Seq| async move {
            assert_eq!(after, 1);
            Ok::<_, std::convert::Infallible>(vec![final_of(1, 4)])
        };
        let subscription = channel.subscribe_after(1, stored).await.unwrap();
        assert_eq!(seqs(&subscription.replay), [4, 5, 6, 7]);
    }

    #[tokio::test]
    async fn a_streaming_reply_whose_deltas_left_the_ring_requires_a_resync() {
        let hub = Hub::new(SIZES);
        let channel = hub.channel(Uuid::nil(), 0);
        for _ in 0..6 {
            channel
                .publish(|seq| async move { delta_of(1, seq) })
                .await
                .unwrap();
        }
        let subscription = channel.subscribe_after(1, no_store).await.unwrap();
        assert!(matches!(subscription.replay, Replay::ResyncRequired));
    }

    #[test]
    fn cancel_replies_cancels_registered_tokens() {
        let hub = Hub::new(SIZES);
        let channel = hub.channel(Uuid::nil(), 0);
        let token = CancellationToken::new();
        channel.register_reply(Uuid::nil(), token.clone());
        assert_eq!(channel.cancel_replies(), 1);
        assert!(token.is_cancelled());
        channel.finish_reply(Uuid::nil());
        assert_eq!(channel.cancel_replies(), 0);
    }
}
