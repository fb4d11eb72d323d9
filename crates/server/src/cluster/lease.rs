//! One writer per conversation across the cluster: a lease is a key (the
//! conversation id) in a NATS KV bucket whose value is the holder's node id.
//! It is taken with a create (which fails while anyone holds it), renewed
//! with compare-and-set on its revision every third of the TTL, and
//! released with a revision-checked delete. A holder that dies stops
//! renewing; the bucket's `max_age` (the TTL) then drops the key and another
//! node may take it.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use async_nats::jetstream::kv::{self, CreateErrorKind};
use futures::StreamExt;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// Lease renewals in flight at once.
const RENEWALS_AT_ONCE: usize = 64;

/// This node's leases.
pub struct Leases {
    bucket: kv::Store,
    node: String,
    ttl: Duration,
    held: Mutex<HashMap<Uuid, Held>>,
    /// Takes are one at a time per node: two local writers of one
    /// conversation must not both try to create its key.
    taking: tokio::sync::Mutex<()>,
}

struct Held {
    revision: u64,
    /// Live [`LeaseGuard`]s.
    holders: usize,
}

/// The outcome of [`Leases::acquire`].
pub enum Acquired {
    /// This node holds the lease until the guard (and its clones) drop.
    Here(LeaseGuard),
    /// Another node does: its id.
    Elsewhere(String),
}

/// Why the lease bucket could not answer.
#[derive(Debug, thiserror::Error)]
#[error("the cluster's lease bucket is unreachable: {0}")]
pub struct LeaseUnavailable(String);

/// This node's hold on one conversation's lease; released when the last
/// guard drops.
pub struct LeaseGuard {
    leases: Arc<Leases>,
    conversation: Uuid,
}

impl Leases {
    pub(super) fn new(bucket: kv::Store, node: String, ttl: Duration) -> Arc<Self> {
        Arc::new(Self {
            bucket,
            node,
            ttl,
            held: Mutex::new(HashMap::new()),
            taking: tokio::sync::Mutex::new(()),
        })
    }

    /// Take (or join this node's hold on) the lease of `conversation`.
    pub async fn acquire(
        self: &Arc<Self>,
        conversation: Uuid,
    ) -> Result<Acquired, LeaseUnavailable> {
        if self.join(conversation) {
            return Ok(Acquired::Here(self.guard(conversation)));
        }
        let _taking = self.taking.lock().await;
        if self.join(conversation) {
            return Ok(Acquired::Here(self.guard(conversation)));
        }
        let key = conversation.simple().to_string();
        let revision = match self.bucket.create(&key, self.node.clone().into()).await {
            Ok(revision) => revision,
            Err(error) if error.kind() == CreateErrorKind::AlreadyExists => {
                let entry = self
                    .bucket
                    .entry(key.as_str())
                    .await
                    .map_err(|e| LeaseUnavailable(e.to_string()))?;
                match entry {
                    Some(entry) if entry.value.as_ref() == self.node.as_bytes() => {
                        // Ours, released a moment ago but not yet deleted:
                        // renew it, so that pending delete finds a newer
                        // revision and leaves it alone.
                        self.bucket
                            .update(&key, self.node.clone().into(), entry.revision)
                            .await
                            .map_err(|e| LeaseUnavailable(e.to_string()))?
                    }
                    Some(entry) => {
                        let holder = String::from_utf8_lossy(&entry.value).into_owned();
                        return Ok(Acquired::Elsewhere(holder));
                    }
                    // Expired between the two calls: the caller tries again.
                    None => return Ok(Acquired::Elsewhere(String::new())),
                }
            }
            Err(error) => return Err(LeaseUnavailable(error.to_string())),
        };
        lock(&self.held).insert(
            conversation,
            Held {
                revision,
                holders: 1,
            },
        );
        Ok(Acquired::Here(LeaseGuard {
            leases: self.clone(),
            conversation,
        }))
    }

    /// Who holds the lease of `conversation`: `None` when nobody does.
    pub async fn holder(&self, conversation: Uuid) -> Result<Option<String>, LeaseUnavailable> {
        let value = self
            .bucket
            .get(conversation.simple().to_string())
            .await
            .map_err(|e| LeaseUnavailable(e.to_string()))?;
        Ok(value.map(|value| String::from_utf8_lossy(&value).into_owned()))
    }

    /// How many conversations this node holds.
    pub fn held_count(&self) -> usize {
        lock(&self.held).len()
    }

    /// Whether this node holds the lease of `conversation`.
    pub fn held_here(&self, conversation: Uuid) -> bool {
        lock(&self.held).contains_key(&conversation)
    }

    fn join(&self, conversation: Uuid) -> bool {
        match lock(&self.held).get_mut(&conversation) {
            Some(held) => {
                held.holders += 1;
                true
            }
            None => false,
        }
    }

    /// A guard for a hold already counted.
    fn guard(self: &Arc<Self>, conversation: Uuid) -> LeaseGuard {
        LeaseGuard {
            leases: self.clone(),
            conversation,
        }
    }

    /// Renew every lease this node holds, every third of the TTL, until `stop`.
    pub async fn keep_renewed(self: Arc<Self>, stop: CancellationToken) {
        let mut ticks = tokio::time::interval(self.ttl / 3);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                _ = ticks.tick() => self.renew_all().await,
            }
        }
    }

    /// Renew every lease held, many at once: one at a time, a node holding
    /// a thousand conversations on a loaded broker took longer than the TTL
    /// to get round them, and other nodes took over replies still running.
    async fn renew_all(&self) {
        let held: Vec<(Uuid, u64)> = lock(&self.held)
            .iter()
            .map(|(id, held)| (*id, held.revision))
            .collect();
        futures::stream::iter(held)
            .for_each_concurrent(RENEWALS_AT_ONCE, |(conversation, revision)| {
                self.renew(conversation, revision)
            })
            .await;
    }

    async fn renew(&self, conversation: Uuid, revision: u64) {
        let key = conversation.simple().to_string();
        match self
            .bucket
            .update(&key, self.node.clone().into(), revision)
            .await
        {
            Ok(renewed) => {
                if let Some(held) = lock(&self.held).get_mut(&conversation) {
                    if held.revision == revision {
                        held.revision = renewed;
                    }
                }
            }
            Err(error) => {
                tracing::warn!(%conversation, %error, "renewing a conversation lease failed");
            }
        }
    }

    fn release(self: &Arc<Self>, conversation: Uuid) {
        let mut held = lock(&self.held);
        let Some(entry) = held.get_mut(&conversation) else {
            return;
        };
        entry.holders = entry.holders.saturating_sub(1);
        if entry.holders > 0 {
            return;
        }
        let revision = entry.revision;
        held.remove(&conversation);
        drop(held);
        // Dropped outside a runtime (a test's teardown): the key expires.
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let leases = self.clone();
        runtime.spawn(async move {
            let key = conversation.simple().to_string();
            // A revision-checked delete: if this node took the lease again
            // meanwhile (a newer revision), it stays.
            if let Err(error) = leases
                .bucket
                .delete_expect_revision(&key, Some(revision))
                .await
            {
                tracing::debug!(%conversation, %error, "lease not deleted (expired or taken again)");
            }
        });
    }
}

impl Clone for LeaseGuard {
    fn clone(&self) -> Self {
        self.leases.join(self.conversation);
        self.leases.guard(self.conversation)
    }
}

impl Drop for LeaseGuard {
    fn drop(&mut self) {
        self.leases.release(self.conversation);
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Plain bookkeeping: carrying on after a panic elsewhere beats poisoning every write.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
