//! Subscriptions and fan-out. Each live conversation has one
//! [`ConversationChannel`]: it numbers the conversation's events (`seq`),
//! serializes each event to JSON once, and broadcasts it to every socket and
//! HTTP stream subscribed to it. Channels exist only while someone holds a
//! [`ChannelHandle`]; the next one starts numbering from the stored `last_seq`.

use std::{
    collections::HashMap,
    future::Future,
    ops::Deref,
    sync::{Arc, Mutex},
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

/// Registry of live conversation channels.
pub struct Hub {
    channels: Mutex<HashMap<Uuid, Arc<ConversationChannel>>>,
    buffer_events: usize,
}

impl Hub {
    /// A hub whose channels buffer `buffer_events` events per subscriber.
    pub fn new(buffer_events: usize) -> Arc<Self> {
        Arc::new(Self {
            channels: Mutex::new(HashMap::new()),
            buffer_events,
        })
    }

    /// The channel of conversation `id`, created if needed with numbering
    /// continuing after `stored_last_seq` (ignored when it already exists).
    pub fn channel(self: &Arc<Self>, id: Uuid, stored_last_seq: Seq) -> ChannelHandle {
        let mut channels = lock(&self.channels);
        let channel = channels
            .entry(id)
            .or_insert_with(|| {
                Arc::new(ConversationChannel::new(
                    id,
                    stored_last_seq,
                    self.buffer_events,
                ))
            })
            .clone();
        ChannelHandle {
            hub: self.clone(),
            channel,
        }
    }

    /// The channel of conversation `id` if it is live (someone is subscribed or replying).
    pub fn live(self: &Arc<Self>, id: Uuid) -> Option<ChannelHandle> {
        let channels = lock(&self.channels);
        let channel = channels.get(&id)?.clone();
        Some(ChannelHandle {
            hub: self.clone(),
            channel,
        })
    }

    /// How many conversations are live (for metrics and leak tests).
    pub fn live_channels(&self) -> usize {
        lock(&self.channels).len()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding these short critical sections leaves plain data
    // behind; carrying on is safer than poisoning every later request.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
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
        // Handles are only created under this lock, so the count is exact:
        // the map's reference plus ours means we are the last handle.
        if Arc::strong_count(&self.channel) == 2 {
            channels.remove(&self.channel.id);
        }
    }
}

/// One conversation's event numbering, fan-out and in-flight replies.
pub struct ConversationChannel {
    pub id: Uuid,
    last_seq: tokio::sync::Mutex<Seq>,
    sender: broadcast::Sender<Arc<Published>>,
    turn: tokio::sync::Mutex<()>,
    replies: Mutex<Vec<(Uuid, CancellationToken)>>,
}

impl ConversationChannel {
    fn new(id: Uuid, last_seq: Seq, buffer_events: usize) -> Self {
        let (sender, _) = broadcast::channel(buffer_events);
        Self {
            id,
            last_seq: tokio::sync::Mutex::new(last_seq),
            sender,
            turn: tokio::sync::Mutex::new(()),
            replies: Mutex::new(Vec::new()),
        }
    }

    /// Subscribe, returning the seq of the last event published before the
    /// subscription: every later event arrives through the receiver.
    pub async fn subscribe(&self) -> (Seq, broadcast::Receiver<Arc<Published>>) {
        let last_seq = self.last_seq.lock().await;
        (*last_seq, self.sender.subscribe())
    }

    /// Publish the event `make` builds for the next seq. `make` may store it
    /// first: numbering is held until it returns, so events leave in seq
    /// order, and a failed `make` consumes no seq.
    pub async fn publish<F, Fut, E>(&self, make: F) -> Result<Arc<Published>, E>
    where
        F: FnOnce(Seq) -> Fut,
        Fut: Future<Output = Result<ServerEvent, E>>,
    {
        let mut last_seq = self.last_seq.lock().await;
        let seq = *last_seq + 1;
        let published = Arc::new(Published::new(make(seq).await?));
        *last_seq = seq;
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

    fn delta(seq: Seq) -> Result<ServerEvent, std::convert::Infallible> {
        Ok(ServerEvent::Delta {
            message_id: Uuid::nil(),
            seq,
            content: "x".into(),
        })
    }

    #[tokio::test]
    async fn events_are_numbered_from_the_stored_seq_and_fanned_out() {
        let hub = Hub::new(16);
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
        let hub = Hub::new(16);
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
        let hub = Hub::new(16);
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

    #[test]
    fn cancel_replies_cancels_registered_tokens() {
        let hub = Hub::new(4);
        let channel = hub.channel(Uuid::nil(), 0);
        let token = CancellationToken::new();
        channel.register_reply(Uuid::nil(), token.clone());
        assert_eq!(channel.cancel_replies(), 1);
        assert!(token.is_cancelled());
        channel.finish_reply(Uuid::nil());
        assert_eq!(channel.cancel_replies(), 0);
    }
}
