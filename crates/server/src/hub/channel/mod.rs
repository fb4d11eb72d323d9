//! One conversation's channel: event numbering, fan-out, the replay ring
//! and in-flight replies. In cluster mode it is also fed the events other
//! nodes publish ([`ConversationChannel::inject`]), and it starts from the
//! broker's history of the conversation ([`Relay::history`]).

use std::{
    collections::{HashMap, VecDeque},
    future::Future,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex,
    },
};

use colloquy_protocol::{Seq, ServerEvent};
use tokio::sync::{broadcast, MutexGuard};
use uuid::Uuid;

mod relayed;

/// How long a resume from ahead of this node's copy waits for it to catch up.
const RESUME_CATCH_UP: std::time::Duration = std::time::Duration::from_secs(3);

use super::{ChannelSizes, Published, Relay, Relayed};

/// One conversation's event numbering, fan-out, replay ring and in-flight replies.
pub struct ConversationChannel {
    pub id: Uuid,
    /// The user the conversation belongs to (whose budgets its turns use).
    pub owner: Uuid,
    log: tokio::sync::Mutex<Log>,
    sender: broadcast::Sender<Arc<Published>>,
    turn: tokio::sync::Mutex<()>,
    /// Most events one resume replays.
    max_replay: usize,
    /// Seqs up to this one are durably reserved: publishing beyond it
    /// without storing first needs a reservation (see `turn::reply`).
    reserved_through: AtomicU64,
    /// `Some` while the conversation has no row yet: it is stored with its
    /// first message (see `turn::publish`), so opening a socket and leaving
    /// stores nothing.
    unstored: Mutex<Option<Unstored>>,
    /// Cluster mode: where events go to and come from other nodes.
    relay: Option<Arc<dyn Relay>>,
}

/// What to store for a conversation that exists only in memory so far,
/// once its first message is accepted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Unstored {
    pub title: String,
    /// The plan step it talks about (a voice coaching call).
    pub step_id: Option<Uuid>,
}

/// The numbering state, guarded together so that publishing, replaying and
/// subscribing see one consistent order.
struct Log {
    last_seq: Seq,
    ring: VecDeque<Arc<Published>>,
    ring_capacity: usize,
    /// Replies still streaming, with the seq of their first delta.
    streaming: HashMap<Uuid, Seq>,
    /// Cluster mode: whether the broker's history has been read in yet.
    synced: bool,
    /// Cluster mode: the broker sequence of the newest event known here.
    stream_seq: Option<u64>,
    /// Cluster mode: other nodes' events that arrived while the history
    /// was being read (at most `PENDING_EVENTS`).
    pending: Vec<Relayed>,
    /// Every event after this seq is in the ring or stored: a resume from
    /// before it cannot be exact (cluster mode: events that never reached
    /// this node).
    complete_from: Seq,
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
    pub(super) fn new(
        id: Uuid,
        owner: Uuid,
        last_seq: Seq,
        unstored: Option<Unstored>,
        sizes: ChannelSizes,
        relay: Option<Arc<dyn Relay>>,
    ) -> Self {
        let (sender, _) = broadcast::channel(sizes.subscriber_buffer);
        let synced = relay.is_none();
        Self {
            id,
            owner,
            log: tokio::sync::Mutex::new(Log {
                last_seq,
                ring: VecDeque::with_capacity(sizes.replay_events.min(64)),
                ring_capacity: sizes.replay_events.max(1),
                streaming: HashMap::new(),
                synced,
                stream_seq: None,
                pending: Vec::new(),
                complete_from: 0,
            }),
            sender,
            turn: tokio::sync::Mutex::new(()),
            reserved_through: AtomicU64::new(last_seq),
            max_replay: sizes.max_replay,
            unstored: Mutex::new(unstored),
            relay,
        }
    }

    /// The numbering state; in cluster mode, first brought up to date with
    /// the broker's history of the conversation (once per channel).
    async fn log(&self) -> tokio::sync::MutexGuard<'_, Log> {
        let mut log = self.log.lock().await;
        if log.synced {
            return log;
        }
        let Some(relay) = &self.relay else {
            log.synced = true;
            return log;
        };
        // The history is read without holding the numbering: the node's one
        // feed of other nodes' events must never wait on a channel's read.
        // What the feed brings meanwhile waits in `pending`.
        drop(log);
        let history = relay.history(self.id).await;
        let mut log = self.log.lock().await;
        if !log.synced {
            log.sync(&history);
            self.reserve_through(log.last_seq);
        }
        log
    }

    /// What to store with the first message, while the conversation has no row.
    pub fn unstored(&self) -> Option<Unstored> {
        super::lock(&self.unstored).clone()
    }

    /// The conversation's row now exists.
    pub fn mark_stored(&self) {
        *super::lock(&self.unstored) = None;
    }

    /// The highest seq known to be durably reserved.
    pub fn reserved_through(&self) -> Seq {
        self.reserved_through.load(Ordering::Acquire)
    }

    /// Record that seqs up to `seq` are durably reserved.
    pub fn reserve_through(&self, seq: Seq) {
        self.reserved_through.fetch_max(seq, Ordering::AcqRel);
    }

    /// Subscribe, returning the seq of the last event published before the
    /// subscription: every later event arrives through the receiver.
    pub async fn subscribe(&self) -> (Seq, broadcast::Receiver<Arc<Published>>) {
        let log = self.log().await;
        (log.last_seq, self.sender.subscribe())
    }

    /// Subscribe and get every event after `after` exactly once, in order:
    /// from the ring when it reaches back far enough; otherwise the stored
    /// events that `load_stored` returns (finished messages, which supersede
    /// their deltas) merged with the ring's deltas of replies still streaming.
    /// Nothing is published meanwhile, so replay and live events neither
    /// overlap nor leave a gap. `load_stored` is given the most messages
    /// worth loading: a gap longer than [`ChannelSizes::max_replay`] events
    /// is not replayed (`ResyncRequired`: the client reloads over HTTP).
    pub async fn subscribe_after<F, Fut, E>(
        &self,
        after: Seq,
        load_stored: F,
    ) -> Result<Subscription, E>
    where
        F: FnOnce(Seq, usize) -> Fut,
        Fut: Future<Output = Result<Vec<ServerEvent>, E>>,
    {
        let mut log = self.log().await;
        if after > log.last_seq && self.relay.is_some() {
            // The client saw more than this node has: another node's feed
            // is ahead of ours. Catch up before answering.
            drop(log);
            self.catch_up(RESUME_CATCH_UP).await;
            log = self.log().await;
        }
        let events = self.sender.subscribe();
        let last_seq = log.last_seq;
        let max_replay = self.max_replay;
        let subscription = |replay| Subscription {
            last_seq,
            replay: match replay {
                Replay::Events(events) if events.len() > max_replay => Replay::ResyncRequired,
                replay => replay,
            },
            events,
        };
        if after > last_seq {
            return Ok(subscription(Replay::ResyncRequired));
        }
        if after == last_seq {
            return Ok(subscription(Replay::Events(Vec::new())));
        }
        if after < log.complete_from {
            return Ok(subscription(Replay::ResyncRequired));
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
        let mut replay: Vec<Arc<Published>> = load_stored(after, max_replay + 1)
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
        let mut log = self.log().await;
        let seq = log.last_seq + 1;
        let published = Arc::new(Published::new(make(seq).await?));
        // In the broker before any subscriber sees it: whatever a client
        // was shown, a node it reconnects to can replay.
        if let Some(relay) = &self.relay {
            if let Some(stream_seq) = relay.publish(self.id, &published, log.stream_seq).await {
                log.stream_seq = Some(stream_seq);
            }
        }
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hub::{
        testing::{delta, SIZES},
        Hub,
    };

    #[tokio::test]
    async fn events_are_numbered_from_the_stored_seq_and_fanned_out() {
        let hub = Hub::new(SIZES);
        let channel = hub.channel(Uuid::nil(), Uuid::nil(), 41);
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
        let channel = hub.channel(Uuid::nil(), Uuid::nil(), 0);
        let failed: Result<_, &str> = channel.publish(|_| async { Err("disk full") }).await;
        assert!(failed.is_err());
        let published = channel
            .publish(|seq| async move { delta(seq) })
            .await
            .unwrap();
        assert_eq!(published.event.seq(), Some(1));
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

    async fn no_store(_: Seq, _: usize) -> Result<Vec<ServerEvent>, std::convert::Infallible> {
        Ok(Vec::new())
    }

    #[tokio::test]
    async fn resume_within_the_ring_replays_exactly_what_was_missed() {
        let hub = Hub::new(SIZES);
        let channel = hub.channel(Uuid::nil(), Uuid::nil(), 0);
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
    async fn resume_from_the_future_requires_a_resync() {
        let hub = Hub::new(SIZES);
        let channel = hub.channel(Uuid::nil(), Uuid::nil(), 5);
        let subscription = channel.subscribe_after(9, no_store).await.unwrap();
        assert!(matches!(subscription.replay, Replay::ResyncRequired));
    }

    #[tokio::test]
    async fn older_gaps_merge_stored_messages_with_streaming_deltas() {
        let hub = Hub::new(SIZES);
        let channel = hub.channel(Uuid::nil(), Uuid::nil(), 0);
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
        let stored = |after: Seq, _| async move {
            assert_eq!(after, 1);
            Ok::<_, std::convert::Infallible>(vec![final_of(1, 4)])
        };
        let subscription = channel.subscribe_after(1, stored).await.unwrap();
        assert_eq!(seqs(&subscription.replay), [4, 5, 6, 7]);
    }

    #[tokio::test]
    async fn a_streaming_reply_whose_deltas_left_the_ring_requires_a_resync() {
        let hub = Hub::new(SIZES);
        let channel = hub.channel(Uuid::nil(), Uuid::nil(), 0);
        for _ in 0..6 {
            channel
                .publish(|seq| async move { delta_of(1, seq) })
                .await
                .unwrap();
        }
        let subscription = channel.subscribe_after(1, no_store).await.unwrap();
        assert!(matches!(subscription.replay, Replay::ResyncRequired));
    }

    #[tokio::test]
    async fn a_gap_longer_than_max_replay_requires_a_resync() {
        let hub = Hub::new(ChannelSizes {
            max_replay: 2,
            ..SIZES
        });
        let channel = hub.channel(Uuid::nil(), Uuid::nil(), 0);
        for _ in 0..3 {
            channel
                .publish(|seq| async move { delta_of(1, seq) })
                .await
                .unwrap();
        }
        let near = channel.subscribe_after(1, no_store).await.unwrap();
        assert_eq!(seqs(&near.replay), [2, 3]);
        let far = channel.subscribe_after(0, no_store).await.unwrap();
        assert!(matches!(far.replay, Replay::ResyncRequired));
    }
}
