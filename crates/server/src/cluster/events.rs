//! Events between nodes. Conversation events go through the JetStream
//! stream (one subject per conversation, our `seq` in a header, a message id
//! per `(conversation, seq)` so a retried publish is stored once, and the
//! writer's last known stream sequence for the subject, so a second writer
//! is refused). Each node follows the whole stream with one ordered consumer
//! and feeds events into the channels it has in memory. User events are
//! hints, not numbered: plain NATS subjects.

use std::{sync::Arc, time::Duration};

use async_nats::{
    header::{NATS_EXPECTED_LAST_SUBJECT_SEQUENCE, NATS_MESSAGE_ID},
    jetstream::consumer::{pull, DeliverPolicy},
    HeaderMap,
};
use bytes::Bytes;
use futures::{future::BoxFuture, StreamExt};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::{attempt, Cluster};
use crate::hub::{Hub, Published, Relay, Relayed};

/// Our `seq` of a relayed event.
const SEQ_HEADER: &str = "Colloquy-Seq";
/// The node that published an event (it does not take its own back).
const NODE_HEADER: &str = "Colloquy-Node";
/// How long reading a conversation's history may wait for the next event
/// (a loaded broker can be slow; a read cut short leaves a gap, not a loss).
const HISTORY_WAIT: Duration = Duration::from_secs(5);
/// User events waiting to be sent; past it they are dropped (they are hints).
const USER_EVENTS_QUEUE: usize = 1024;

/// The [`Relay`] of a cluster node.
pub struct EventRelay {
    cluster: Arc<Cluster>,
    user_events: mpsc::Sender<(Uuid, Arc<Published>)>,
}

impl EventRelay {
    /// A relay over `cluster`; user events leave through a task started here.
    pub fn new(cluster: Arc<Cluster>) -> Arc<Self> {
        let (user_events, queue) = mpsc::channel(USER_EVENTS_QUEUE);
        tokio::spawn(send_user_events(cluster.clone(), queue));
        Arc::new(Self {
            cluster,
            user_events,
        })
    }

    async fn publish_event(
        &self,
        conversation: Uuid,
        event: &Published,
        expected: Option<u64>,
    ) -> Option<u64> {
        let cluster = &self.cluster;
        let seq = event.event.seq()?;
        if !cluster.connected() {
            cluster.count_relay_failure();
            return None;
        }
        let mut headers = HeaderMap::new();
        headers.insert(SEQ_HEADER, seq.to_string().as_str());
        headers.insert(NODE_HEADER, cluster.node.as_str());
        headers.insert(NATS_MESSAGE_ID, format!("{conversation}:{seq}").as_str());
        if let Some(expected) = expected {
            headers.insert(
                NATS_EXPECTED_LAST_SUBJECT_SEQUENCE,
                expected.to_string().as_str(),
            );
        }
        let payload = Bytes::copy_from_slice(event.json.as_str().as_bytes());
        let subject = cluster.names.conversation(conversation);
        let acked = match cluster
            .jetstream
            .publish_with_headers(subject, headers, payload)
            .await
        {
            Ok(ack) => ack.await,
            Err(error) => Err(error),
        };
        match acked {
            Ok(ack) if ack.duplicate => {
                tracing::error!(%conversation, seq, "another node already published this seq: two writers");
                cluster.count_relay_failure();
                None
            }
            Ok(ack) => Some(ack.sequence),
            Err(error) => {
                tracing::warn!(%conversation, seq, %error, "an event could not be relayed to the other nodes");
                cluster.count_relay_failure();
                None
            }
        }
    }

    async fn read_history(&self, conversation: Uuid) -> Vec<Relayed> {
        let cluster = &self.cluster;
        if !cluster.connected() {
            return Vec::new();
        }
        let subject = cluster.names.conversation(conversation);
        // Nothing to read (or no broker): no consumer to make.
        let Ok(newest) = cluster
            .stream
            .get_last_raw_message_by_subject(&subject)
            .await
        else {
            return Vec::new();
        };
        let consumer = cluster
            .stream
            .create_consumer(pull::OrderedConfig {
                filter_subject: subject,
                deliver_policy: DeliverPolicy::All,
                ..Default::default()
            })
            .await;
        let mut messages = match consumer {
            Ok(consumer) => match consumer.messages().await {
                Ok(messages) => messages,
                Err(error) => {
                    tracing::warn!(%conversation, %error, "cannot read a conversation's events");
                    return Vec::new();
                }
            },
            Err(error) => {
                tracing::warn!(%conversation, %error, "cannot read a conversation's events");
                return Vec::new();
            }
        };
        let mut history = Vec::new();
        loop {
            let message = match tokio::time::timeout(HISTORY_WAIT, messages.next()).await {
                Ok(Some(Ok(message))) => message,
                Ok(Some(Err(error))) => {
                    tracing::warn!(%conversation, %error, "reading a conversation's events failed");
                    break;
                }
                Ok(None) | Err(_) => break,
            };
            let Ok(info) = message.info() else {
                continue;
            };
            let stream_seq = info.stream_sequence;
            if let Some(published) = Published::decode(&message.payload) {
                history.push(Relayed {
                    stream_seq,
                    published: Arc::new(published),
                });
            }
            if stream_seq >= newest.sequence {
                break;
            }
        }
        history
    }

    async fn newest_event(&self, conversation: Uuid) -> Option<(u64, u64)> {
        let cluster = &self.cluster;
        let subject = cluster.names.conversation(conversation);
        let newest = cluster
            .stream
            .get_last_raw_message_by_subject(&subject)
            .await
            .ok()?;
        let seq = newest.headers.get(SEQ_HEADER)?.as_str().parse().ok()?;
        Some((newest.sequence, seq))
    }
}

impl Relay for EventRelay {
    fn publish<'a>(
        &'a self,
        conversation: Uuid,
        event: &'a Published,
        expected: Option<u64>,
    ) -> BoxFuture<'a, Option<u64>> {
        Box::pin(self.publish_event(conversation, event, expected))
    }

    fn history(&self, conversation: Uuid) -> BoxFuture<'_, Vec<Relayed>> {
        Box::pin(self.read_history(conversation))
    }

    fn newest(&self, conversation: Uuid) -> BoxFuture<'_, Option<(u64, u64)>> {
        Box::pin(self.newest_event(conversation))
    }

    fn publish_to_user(&self, user: Uuid, event: &Published) {
        let event = Arc::new(Published {
            event: event.event.clone(),
            json: event.json.clone(),
        });
        if self.user_events.try_send((user, event)).is_err() {
            tracing::debug!(%user, "user event not relayed: queue full");
        }
    }
}

/// Whether a message carries this node's own id (it was applied here already).
fn from_this_node(cluster: &Cluster, headers: Option<&HeaderMap>) -> bool {
    headers
        .and_then(|headers| headers.get(NODE_HEADER))
        .is_some_and(|node| node.as_str() == cluster.node)
}

/// The id a subject ends with, after `prefix`.
fn id_after(subject: &str, prefix: &str) -> Option<Uuid> {
    subject
        .strip_prefix(prefix)
        .and_then(|id| Uuid::parse_str(id).ok())
}

/// Send queued user events in order over plain NATS.
async fn send_user_events(
    cluster: Arc<Cluster>,
    mut queue: mpsc::Receiver<(Uuid, Arc<Published>)>,
) {
    while let Some((user, event)) = queue.recv().await {
        let mut headers = HeaderMap::new();
        headers.insert(NODE_HEADER, cluster.node.as_str());
        let payload = Bytes::copy_from_slice(event.json.as_str().as_bytes());
        if let Err(error) = cluster
            .client
            .publish_with_headers(cluster.names.user(user), headers, payload)
            .await
        {
            tracing::debug!(%user, %error, "user event not relayed");
        }
    }
}

/// Feed every other node's conversation events into this node's channels,
/// until `stop`. Follows again from where it stopped after losing the stream.
pub async fn follow_conversations(cluster: Arc<Cluster>, hub: Arc<Hub>, stop: CancellationToken) {
    let prefix = format!("{}.c.", cluster.names.namespace);
    let mut last_seen: Option<u64> = None;
    loop {
        let reconnected = cluster.reconnected();
        let followed = async {
            let stream_last = cluster.ensure_streams().await?;
            // A stream made anew (NATS lost its store) numbers from 1 again.
            let deliver_policy = match last_seen {
                Some(seen) if seen <= stream_last => DeliverPolicy::ByStartSequence {
                    start_sequence: seen + 1,
                },
                _ => DeliverPolicy::New,
            };
            let consumer = cluster
                .stream
                .create_consumer(pull::OrderedConfig {
                    filter_subject: cluster.names.conversations(),
                    deliver_policy,
                    ..Default::default()
                })
                .await?;
            let mut messages = consumer.messages().await?;
            tokio::pin!(reconnected);
            loop {
                let message = tokio::select! {
                    () = &mut reconnected => return Ok::<(), async_nats::Error>(()),
                    message = messages.next() => match message {
                        Some(message) => message?,
                        None => return Ok(()),
                    },
                };
                let Ok(info) = message.info() else {
                    continue;
                };
                last_seen = Some(info.stream_sequence);
                if from_this_node(&cluster, message.headers.as_ref()) {
                    continue;
                }
                let Some(conversation) = id_after(&message.subject, &prefix) else {
                    continue;
                };
                let Some(channel) = hub.lookup(conversation) else {
                    continue;
                };
                if let Some(published) = Published::decode(&message.payload) {
                    channel
                        .inject(Relayed {
                            stream_seq: info.stream_sequence,
                            published: Arc::new(published),
                        })
                        .await;
                }
            }
        };
        if !attempt(&stop, followed, "following the event stream").await {
            return;
        }
    }
}

/// Deliver every other node's user events to this node's sockets, until `stop`.
pub async fn follow_users(cluster: Arc<Cluster>, hub: Arc<Hub>, stop: CancellationToken) {
    let prefix = format!("{}.u.", cluster.names.namespace);
    loop {
        let followed = async {
            let mut messages = cluster.client.subscribe(cluster.names.users()).await?;
            while let Some(message) = messages.next().await {
                if from_this_node(&cluster, message.headers.as_ref()) {
                    continue;
                }
                let user = id_after(&message.subject, &prefix);
                if let (Some(user), Some(published)) = (user, Published::decode(&message.payload)) {
                    hub.deliver_to_user(user, Arc::new(published));
                }
            }
            Ok::<(), async_nats::Error>(())
        };
        if !attempt(&stop, followed, "following user events").await {
            return;
        }
    }
}
