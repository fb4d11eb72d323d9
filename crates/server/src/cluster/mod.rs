//! Cluster mode: several nodes behind a load balancer, sharing one database
//! and one NATS server (`nats_url`). Without it a node is alone: the
//! in-process hub is all there is.
//!
//! - [`events`]: every conversation event goes through one JetStream stream,
//!   a subject per conversation, our `seq` in a header; each node follows
//!   the stream and feeds other nodes' events into its own channels, and a
//!   channel new in memory starts from the stream's history. User events
//!   (conversation list hints) go over plain NATS subjects.
//! - [`lease`]: one writer per conversation: the node that stores a message
//!   or runs a reply holds the conversation's lease, a key in a NATS KV
//!   bucket whose entries expire after `cluster_lease_ttl_secs`.
//! - [`forward`]: a message sent through another node is handed to the
//!   lease holder, which stores, acks and answers it in order.
//!
//! The database stays the source of truth for finished messages; the
//! stream only carries what is in flight.

pub mod events;
pub mod forward;
mod health;
pub mod lease;
pub mod sockets;

use std::{
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::Duration,
};

use anyhow::Context;
use async_nats::jetstream::{self, stream};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

pub use lease::{Acquired, LeaseGuard, Leases};
pub use sockets::UserSockets;

use crate::limits::Limits;

/// How a node joins the cluster.
#[derive(Debug, Clone)]
pub struct ClusterSettings {
    /// `nats://host:port`.
    pub url: String,
    /// Prefix of every subject, stream and bucket: clusters (and test runs)
    /// sharing one NATS server do not see each other.
    pub namespace: String,
    /// How long a conversation's lease outlives its holder's last renewal.
    pub lease_ttl: Duration,
    /// How long the stream keeps events (the database keeps finished messages).
    pub event_retention: Duration,
    /// Most events the stream keeps per conversation.
    pub events_per_conversation: i64,
}

/// The names one cluster uses on the NATS server.
#[derive(Debug, Clone)]
pub(crate) struct Names {
    namespace: String,
}

impl Names {
    fn stream(&self) -> String {
        format!("{}_events", self.namespace)
    }

    fn leases(&self) -> String {
        format!("{}_leases", self.namespace)
    }

    fn sockets(&self) -> String {
        format!("{}_sockets", self.namespace)
    }

    pub(crate) fn conversation(&self, id: Uuid) -> String {
        format!("{}.c.{id}", self.namespace)
    }

    fn conversations(&self) -> String {
        format!("{}.c.>", self.namespace)
    }

    fn user(&self, id: Uuid) -> String {
        format!("{}.u.{id}", self.namespace)
    }

    fn users(&self) -> String {
        format!("{}.u.*", self.namespace)
    }

    fn submit(&self, node: &str) -> String {
        format!("{}.node.{node}.submit", self.namespace)
    }
}

/// This node's membership: the NATS connection, the event stream and the
/// lease bucket.
pub struct Cluster {
    /// This node's id (random per start): the value of the leases it holds.
    pub node: String,
    client: async_nats::Client,
    jetstream: jetstream::Context,
    stream: stream::Stream,
    names: Names,
    settings: ClusterSettings,
    pub leases: Arc<Leases>,
    /// Sockets per user, counted across nodes.
    pub sockets: Arc<UserSockets>,
    /// Events that could not be put in the stream (broker down, or a second writer).
    relay_failures: AtomicU64,
    /// Counts (re)connections to NATS: a follower starts again after one,
    /// rather than trust a consumer the server may have lost.
    connections: Arc<tokio::sync::watch::Sender<u64>>,
}

impl Cluster {
    /// Connect to NATS and make sure the stream and the lease bucket exist.
    /// Fails when NATS cannot be reached: a node that cannot see the others
    /// must not start serving on its own.
    pub async fn connect(
        settings: ClusterSettings,
        limits: Arc<Limits>,
    ) -> anyhow::Result<Arc<Self>> {
        let node = Uuid::new_v4().simple().to_string();
        let (connections, _) = tokio::sync::watch::channel(0u64);
        let connections = Arc::new(connections);
        let counted = connections.clone();
        let client = async_nats::ConnectOptions::new()
            .name(format!("colloquy {node}"))
            .event_callback(move |event| {
                let counted = counted.clone();
                async move {
                    if matches!(event, async_nats::Event::Connected) {
                        counted.send_modify(|count| *count += 1);
                    }
                }
            })
            .connection_timeout(Duration::from_secs(5))
            .connect(settings.url.as_str())
            .await
            .with_context(|| format!("cannot reach NATS at {}", settings.url))?;
        let mut jetstream = jetstream::new(client.clone());
        // A publish that takes longer is a broker in trouble: give up on it
        // (the event still reaches this node's sockets) rather than stall the reply.
        jetstream.set_timeout(Duration::from_secs(5));
        let names = Names {
            namespace: settings.namespace.clone(),
        };
        let stream = ensure_streams(&jetstream, &names, &settings).await?;
        let bucket = jetstream
            .get_key_value(names.leases())
            .await
            .context("opening the lease bucket")?;
        let leases = Leases::new(bucket, node.clone(), settings.lease_ttl);
        let sockets_bucket = jetstream
            .get_key_value(names.sockets())
            .await
            .context("opening the socket count bucket")?;
        let sockets = UserSockets::new(sockets_bucket, node.clone(), limits);
        tracing::info!(%node, namespace = %settings.namespace, "joined the cluster");
        Ok(Arc::new(Self {
            node,
            client,
            jetstream,
            stream,
            names,
            settings,
            leases,
            sockets,
            relay_failures: AtomicU64::new(0),
            connections,
        }))
    }

    /// Recreate the stream and bucket if the NATS server lost them (a
    /// restart without its store); a follower does this before each start.
    /// Returns the stream's last sequence.
    pub(crate) async fn ensure_streams(&self) -> Result<u64, async_nats::Error> {
        let mut stream = ensure_streams(&self.jetstream, &self.names, &self.settings).await?;
        Ok(stream.info().await?.state.last_sequence)
    }

    /// Resolves at the next (re)connection to NATS.
    pub(crate) fn reconnected(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut connections = self.connections.subscribe();
        connections.mark_unchanged();
        async move {
            let _ = connections.changed().await;
        }
    }

    /// Whether the NATS connection is up right now.
    pub fn connected(&self) -> bool {
        self.client.connection_state() == async_nats::connection::State::Connected
    }

    /// Events that could not be relayed since start.
    pub fn relay_failures(&self) -> u64 {
        self.relay_failures.load(Ordering::Relaxed)
    }

    /// The lease TTL.
    pub fn lease_ttl(&self) -> Duration {
        self.settings.lease_ttl
    }

    fn count_relay_failure(&self) {
        self.relay_failures.fetch_add(1, Ordering::Relaxed);
    }

    /// Remove this cluster's stream and bucket (tests clean up with it).
    pub async fn destroy(&self) -> anyhow::Result<()> {
        self.jetstream.delete_stream(self.names.stream()).await?;
        self.jetstream
            .delete_stream(format!("KV_{}", self.names.leases()))
            .await?;
        self.jetstream
            .delete_stream(format!("KV_{}", self.names.sockets()))
            .await?;
        Ok(())
    }
}

/// Make sure the event stream and the buckets' streams exist (again, after
/// a NATS server lost them); returns the event stream.
async fn ensure_streams(
    jetstream: &jetstream::Context,
    names: &Names,
    settings: &ClusterSettings,
) -> anyhow::Result<stream::Stream> {
    let stream = jetstream
        .get_or_create_stream(stream::Config {
            name: names.stream(),
            subjects: vec![names.conversations()],
            max_age: settings.event_retention,
            max_messages_per_subject: settings.events_per_conversation,
            storage: stream::StorageType::File,
            // Long enough for a retried publish to be recognised.
            duplicate_window: Duration::from_secs(120),
            allow_direct: true,
            ..Default::default()
        })
        .await
        .context("creating the JetStream event stream (is JetStream enabled?)")?;
    // On disk: leases held survive a NATS restart.
    jetstream
        .get_or_create_stream(bucket_stream(
            &names.leases(),
            settings.lease_ttl,
            stream::StorageType::File,
        ))
        .await
        .context("creating the lease bucket")?;
    // Soft state, rewritten by every node while it holds sockets: in memory.
    jetstream
        .get_or_create_stream(bucket_stream(
            &names.sockets(),
            sockets::BUCKET_MAX_AGE,
            stream::StorageType::Memory,
        ))
        .await
        .context("creating the socket count bucket")?;
    Ok(stream)
}

/// The stream behind KV bucket `bucket`, made as the KV client would make
/// it: its own bucket creation first asks for the account's details, which
/// NATS 2.9 answers in a shape this client cannot read.
fn bucket_stream(bucket: &str, max_age: Duration, storage: stream::StorageType) -> stream::Config {
    stream::Config {
        name: format!("KV_{bucket}"),
        subjects: vec![format!("$KV.{bucket}.>")],
        max_messages_per_subject: 1,
        max_age,
        storage,
        allow_rollup: true,
        deny_delete: true,
        allow_direct: true,
        discard: stream::DiscardPolicy::New,
        num_replicas: 1,
        ..Default::default()
    }
}

/// How long a follower waits before starting again after losing NATS.
const RESTART_WAIT: Duration = Duration::from_millis(500);

/// Run one attempt of a long-lived follower until it ends or `stop`; then
/// log why it ended and wait a moment. False once `stop` has come.
pub(crate) async fn attempt(
    stop: &CancellationToken,
    follower: impl std::future::Future<Output = Result<(), async_nats::Error>>,
    what: &str,
) -> bool {
    tokio::select! {
        () = stop.cancelled() => return false,
        result = follower => {
            if let Err(error) = result {
                tracing::warn!(%error, "lost NATS while {what}; starting again");
            }
        }
    }
    tokio::select! {
        () = stop.cancelled() => false,
        () = tokio::time::sleep(RESTART_WAIT) => true,
    }
}
