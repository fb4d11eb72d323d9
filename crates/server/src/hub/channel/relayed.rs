//! A channel in cluster mode: events other nodes published, taken in
//! exactly once and in order; catching up before this node writes; the
//! numbering the database says goes on from.

use std::{sync::Arc, time::Duration};

use colloquy_protocol::{Seq, ServerEvent};
use uuid::Uuid;

use super::{ConversationChannel, Log};
use crate::hub::{Published, Relayed};

/// Most events kept while a channel reads its history.
const PENDING_EVENTS: usize = 4096;

impl Log {
    /// Take in the broker's `history`, then what arrived while it was read.
    pub(super) fn sync(&mut self, history: &[Relayed]) {
        for relayed in history {
            let _ = self.apply(relayed, true);
        }
        // History that stops short of what the database has: the rest never
        // reached the broker. (No history at all: nothing streamed lately,
        // and the stored messages are all there is.)
        if self
            .newest_in_ring()
            .is_some_and(|newest| newest != self.last_seq)
        {
            self.gap(self.last_seq);
        }
        let mut pending = std::mem::take(&mut self.pending);
        pending.sort_by_key(|relayed| relayed.stream_seq);
        for relayed in pending {
            let _ = self.apply(&relayed, false);
        }
        self.synced = true;
    }

    pub(super) fn newest_in_ring(&self) -> Option<Seq> {
        self.ring.back().and_then(|p| p.event.seq())
    }

    /// Forget the ring: what it misses cannot be replayed from memory (the
    /// stored messages can still be).
    pub(super) fn clear_ring(&mut self) {
        self.ring.clear();
        self.streaming.clear();
    }

    /// Nothing before `through` can be replayed exactly from here any more:
    /// events of it never reached this node.
    pub(super) fn gap(&mut self, through: Seq) {
        self.clear_ring();
        self.complete_from = self.complete_from.max(through);
    }

    /// Take in an event from the broker. While `syncing`, events already
    /// numbered (the conversation's recent past) only fill the ring; later
    /// ones are new. The ring stays a gapless run ending at `last_seq`; a
    /// missing seq is a gap ([`Log::gap`]), never skipped silently.
    /// Returns the event when it is new (to be sent to subscribers).
    pub(super) fn apply(&mut self, relayed: &Relayed, syncing: bool) -> Option<Arc<Published>> {
        self.stream_seq = self.stream_seq.max(Some(relayed.stream_seq));
        let seq = relayed.published.event.seq()?;
        if seq <= self.last_seq {
            if syncing && self.newest_in_ring().is_none_or(|newest| seq > newest) {
                if self
                    .newest_in_ring()
                    .is_some_and(|newest| seq != newest + 1)
                {
                    self.gap(seq - 1);
                }
                self.record(&relayed.published);
            }
            return None;
        }
        if seq != self.last_seq + 1 {
            self.gap(seq - 1);
        } else if self
            .newest_in_ring()
            .is_some_and(|newest| newest != self.last_seq)
        {
            self.gap(self.last_seq);
        }
        self.last_seq = seq;
        self.record(&relayed.published);
        Some(relayed.published.clone())
    }
}

impl ConversationChannel {
    /// Cluster mode: an event another node published. Events already here
    /// (or older) are dropped, so each is delivered once, in order. A
    /// channel still reading its history keeps it for after.
    pub async fn inject(&self, relayed: Relayed) {
        let mut log = self.log.lock().await;
        if !log.synced {
            // Applied after the history; past the bound, the history read
            // is newer than what is dropped, or the ring notes the gap.
            if log.pending.len() < PENDING_EVENTS {
                log.pending.push(relayed);
            }
            return;
        }
        if let Some(new) = log.apply(&relayed, false) {
            if let Some(seq) = new.event.seq() {
                self.reserve_through(seq);
            }
            let _ = self.sender.send(new);
        }
    }

    /// Cluster mode, before this node writes: wait (up to `wait`) until every
    /// event the broker holds for this conversation is here; the live feed
    /// may lag behind. Past `wait`, the history is read directly.
    pub async fn catch_up(&self, wait: Duration) {
        let Some(relay) = &self.relay else {
            return;
        };
        let Some((stream_seq, seq)) = relay.newest(self.id).await else {
            return;
        };
        let caught_up = |log: &Log| log.stream_seq >= Some(stream_seq) || log.last_seq >= seq;
        let deadline = tokio::time::Instant::now() + wait;
        while tokio::time::Instant::now() < deadline {
            if caught_up(&*self.log().await) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let history = relay.history(self.id).await;
        let mut log = self.log().await;
        for relayed in history {
            if let Some(new) = log.apply(&relayed, false) {
                let _ = self.sender.send(new);
            }
        }
    }

    /// Numbering continues after `seq` (what the database says was stored
    /// or reserved, perhaps by another node). Skipped seqs were never
    /// published here, so the ring no longer leads up to the head.
    pub async fn advance_to(&self, seq: Seq) {
        let mut log = self.log().await;
        if seq > log.last_seq {
            log.last_seq = seq;
            log.gap(seq);
        }
        self.reserve_through(seq);
    }

    /// The text a still-streaming reply has sent so far, if every delta of
    /// it is in the ring.
    pub async fn streamed_text(&self, reply_id: Uuid) -> Option<String> {
        let log = self.log().await;
        let first = *log.streaming.get(&reply_id)?;
        if log.oldest_in_ring().is_none_or(|oldest| oldest > first) {
            return None;
        }
        let mut text = String::new();
        for published in &log.ring {
            if let ServerEvent::Delta {
                message_id,
                content,
                ..
            } = &published.event
            {
                if *message_id == reply_id {
                    text.push_str(content);
                }
            }
        }
        Some(text)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use futures::future::BoxFuture;

    use super::*;
    use crate::hub::{testing::SIZES, Hub, Relay, Replay};

    /// The broker as far as a channel can tell: what it holds per
    /// conversation. Publishing appends, like a stream would.
    #[derive(Default)]
    struct MemoryRelay {
        events: Mutex<Vec<Relayed>>,
    }

    impl MemoryRelay {
        fn holding(events: impl IntoIterator<Item = ServerEvent>) -> Arc<Self> {
            let relay = Self::default();
            for event in events {
                relay.append(Arc::new(Published::new(event)));
            }
            Arc::new(relay)
        }

        fn append(&self, published: Arc<Published>) -> u64 {
            let mut events = self.events.lock().unwrap();
            let stream_seq = events.len() as u64 + 100;
            events.push(Relayed {
                stream_seq,
                published,
            });
            stream_seq
        }
    }

    impl Relay for MemoryRelay {
        fn publish<'a>(
            &'a self,
            _: Uuid,
            event: &'a Published,
            _: Option<u64>,
        ) -> BoxFuture<'a, Option<u64>> {
            let published = Arc::new(Published::new(event.event.clone()));
            Box::pin(async move { Some(self.append(published)) })
        }

        fn history(&self, _: Uuid) -> BoxFuture<'_, Vec<Relayed>> {
            let events = self.events.lock().unwrap().clone();
            Box::pin(async move { events })
        }

        fn newest(&self, _: Uuid) -> BoxFuture<'_, Option<(u64, u64)>> {
            let newest = self.events.lock().unwrap().last().map(|relayed| {
                let seq = relayed.published.event.seq().unwrap_or_default();
                (relayed.stream_seq, seq)
            });
            Box::pin(async move { newest })
        }

        fn publish_to_user(&self, _: Uuid, _: &Published) {}
    }

    fn delta(reply: u128, seq: Seq) -> ServerEvent {
        ServerEvent::Delta {
            message_id: Uuid::from_u128(reply),
            seq,
            content: format!("d{seq}"),
        }
    }

    fn relayed(stream_seq: u64, event: ServerEvent) -> Relayed {
        Relayed {
            stream_seq,
            published: Arc::new(Published::new(event)),
        }
    }

    fn replayed(replay: &Replay) -> Vec<Seq> {
        match replay {
            Replay::Events(events) => events.iter().filter_map(|p| p.event.seq()).collect(),
            Replay::ResyncRequired => panic!("expected events"),
        }
    }

    async fn no_store(_: Seq, _: usize) -> Result<Vec<ServerEvent>, std::convert::Infallible> {
        Ok(Vec::new())
    }

    #[tokio::test]
    async fn a_new_channel_starts_from_the_brokers_history() {
        let relay = MemoryRelay::holding((3..=6).map(|seq| delta(1, seq)));
        let hub = Hub::with_relay(SIZES, Some(relay));
        // The database knows up to seq 2; the broker has deltas 3..=6.
        let channel = hub.channel(Uuid::nil(), Uuid::nil(), 2);
        let subscription = channel.subscribe_after(4, no_store).await.unwrap();
        assert_eq!(subscription.last_seq, 6);
        assert_eq!(replayed(&subscription.replay), [5, 6]);
        assert_eq!(
            channel.streamed_text(Uuid::from_u128(1)).await.as_deref(),
            Some("d3d4d5d6")
        );
        // Its own next event continues the numbering.
        let next = channel
            .publish(|seq| async move { Ok::<_, std::convert::Infallible>(delta(1, seq)) })
            .await
            .unwrap();
        assert_eq!(next.event.seq(), Some(7));
    }

    #[tokio::test]
    async fn injected_events_arrive_once_and_in_order() {
        let relay = MemoryRelay::holding([delta(1, 1)]);
        let hub = Hub::with_relay(SIZES, Some(relay));
        let channel = hub.channel(Uuid::nil(), Uuid::nil(), 0);
        let (last_seq, mut events) = channel.subscribe().await;
        assert_eq!(last_seq, 1);
        channel.inject(relayed(100, delta(1, 1))).await; // already here
        channel.inject(relayed(101, delta(1, 2))).await;
        channel.inject(relayed(101, delta(1, 2))).await; // delivered twice
        channel.inject(relayed(102, delta(1, 3))).await;
        assert_eq!(events.recv().await.unwrap().event.seq(), Some(2));
        assert_eq!(events.recv().await.unwrap().event.seq(), Some(3));
        assert!(events.try_recv().is_err(), "nothing else");
    }

    #[tokio::test]
    async fn events_that_arrive_while_the_history_is_read_follow_it() {
        let relay = MemoryRelay::holding([delta(1, 1), delta(1, 2)]);
        let hub = Hub::with_relay(SIZES, Some(relay));
        let channel = hub.channel(Uuid::nil(), Uuid::nil(), 0);
        // Not read yet: these wait, whatever their order and overlap.
        channel.inject(relayed(102, delta(1, 3))).await;
        channel.inject(relayed(101, delta(1, 2))).await;
        let subscription = channel.subscribe_after(0, no_store).await.unwrap();
        assert_eq!(subscription.last_seq, 3);
        assert_eq!(replayed(&subscription.replay), [1, 2, 3]);
    }

    #[tokio::test]
    async fn history_that_stops_short_of_the_database_is_not_replayed_from_memory() {
        // Seqs 3 and 4 were stored but never reached the broker.
        let relay = MemoryRelay::holding([delta(1, 1), delta(1, 2)]);
        let hub = Hub::with_relay(SIZES, Some(relay));
        let channel = hub.channel(Uuid::nil(), Uuid::nil(), 4);
        let subscription = channel.subscribe_after(1, no_store).await.unwrap();
        assert_eq!(subscription.last_seq, 4);
        assert!(matches!(subscription.replay, Replay::ResyncRequired));
    }

    #[tokio::test]
    async fn a_gap_in_the_feed_is_never_replayed_over() {
        let relay = MemoryRelay::holding([delta(1, 1), delta(1, 2)]);
        let hub = Hub::with_relay(SIZES, Some(relay));
        let channel = hub.channel(Uuid::nil(), Uuid::nil(), 0);
        let _ = channel.subscribe().await;
        // Seqs 3 and 4 never arrived.
        channel.inject(relayed(104, delta(1, 5))).await;
        let from_before = channel.subscribe_after(2, no_store).await.unwrap();
        assert!(matches!(from_before.replay, Replay::ResyncRequired));
        let from_after = channel.subscribe_after(4, no_store).await.unwrap();
        assert_eq!(replayed(&from_after.replay), [5]);
    }

    #[tokio::test]
    async fn advancing_past_unseen_seqs_leaves_the_ring_behind() {
        let relay = MemoryRelay::holding([delta(1, 1), delta(1, 2)]);
        let hub = Hub::with_relay(SIZES, Some(relay));
        let channel = hub.channel(Uuid::nil(), Uuid::nil(), 0);
        channel.advance_to(9).await;
        assert_eq!(channel.reserved_through(), 9);
        let subscription = channel.subscribe_after(9, no_store).await.unwrap();
        assert_eq!(subscription.last_seq, 9);
        assert!(channel.streamed_text(Uuid::from_u128(1)).await.is_none());
    }
}
