//! `max_sockets_per_user` across the cluster. Each user has one key in a
//! NATS KV bucket holding, per node, how many sockets the user has open
//! there and until when that figure holds. A node admits a socket only if
//! its own count plus the other nodes' fits, and writes its count with
//! compare-and-set, so two nodes admitting at once cannot both go over. A
//! node refreshes its figures while it holds sockets; a killed node's
//! figures lapse after [`FIGURE_LIFETIME`].

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use async_nats::jetstream::kv::{self, CreateErrorKind};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::limits::{Limits, SocketRefused};

/// How long a node's figure holds without being refreshed.
const FIGURE_LIFETIME: Duration = Duration::from_secs(30);
/// A user's key goes when no node has touched it for this long.
pub(super) const BUCKET_MAX_AGE: Duration = Duration::from_secs(120);
/// Writes retried when another node wrote first.
const WRITE_ATTEMPTS: usize = 8;

/// Per node: (sockets, valid until, in ms since the epoch).
type Figures = BTreeMap<String, (usize, i64)>;

/// This node's part in counting each user's sockets cluster-wide.
pub struct UserSockets {
    bucket: kv::Store,
    node: String,
    limits: Arc<Limits>,
}

impl UserSockets {
    pub(super) fn new(bucket: kv::Store, node: String, limits: Arc<Limits>) -> Arc<Self> {
        Arc::new(Self {
            bucket,
            node,
            limits,
        })
    }

    /// Admit one more socket of `user`, already counted on this node: refused
    /// when the user's sockets on every node would exceed the maximum. With
    /// NATS unreachable only this node's count applies (logged).
    pub async fn admit(&self, user: Uuid) -> Result<(), SocketRefused> {
        match self.write(user, true).await {
            Ok(admitted) => admitted,
            Err(error) => {
                tracing::debug!(%user, %error, "sockets of other nodes not counted");
                Ok(())
            }
        }
    }

    /// Write this node's current count for `user` (after a socket closed).
    pub async fn refresh(&self, user: Uuid) {
        if let Err(error) = self.write(user, false).await {
            tracing::debug!(%user, %error, "socket count not shared");
        }
    }

    /// Keep this node's figures fresh until `stop`.
    pub async fn keep_fresh(self: Arc<Self>, stop: CancellationToken) {
        let mut ticks = tokio::time::interval(FIGURE_LIFETIME / 3);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                _ = ticks.tick() => {
                    for user in self.limits.users_with_sockets() {
                        self.refresh(user).await;
                    }
                }
            }
        }
    }

    /// Set this node's figure for `user` to its current count; with
    /// `check`, refuse instead when the total would exceed the maximum.
    async fn write(
        &self,
        user: Uuid,
        check: bool,
    ) -> Result<Result<(), SocketRefused>, async_nats::Error> {
        let key = user.simple().to_string();
        for _ in 0..WRITE_ATTEMPTS {
            let entry = self.bucket.entry(key.as_str()).await?;
            let now = crate::store::now_millis();
            let (mut figures, revision) = match &entry {
                Some(entry) if entry.operation == kv::Operation::Put => (
                    serde_json::from_slice::<Figures>(&entry.value).unwrap_or_default(),
                    Some(entry.revision),
                ),
                Some(entry) => (Figures::new(), Some(entry.revision)),
                None => (Figures::new(), None),
            };
            figures.retain(|node, (_, until)| *until > now && *node != self.node);
            let here = self.limits.user_sockets(user);
            let elsewhere: usize = figures.values().map(|(count, _)| count).sum();
            if check && here + elsewhere > self.limits.max_sockets_per_user() {
                return Ok(Err(SocketRefused::UserFull));
            }
            if here > 0 {
                let until = now + i64::try_from(FIGURE_LIFETIME.as_millis()).unwrap_or(i64::MAX);
                figures.insert(self.node.clone(), (here, until));
            }
            let value = serde_json::to_vec(&figures)?;
            let written = match revision {
                Some(revision) => self
                    .bucket
                    .update(&key, value.into(), revision)
                    .await
                    .map(drop)
                    .map_err(|error| error.kind() == kv::UpdateErrorKind::WrongLastRevision),
                None => self
                    .bucket
                    .create(&key, value.into())
                    .await
                    .map(drop)
                    .map_err(|error| error.kind() == CreateErrorKind::AlreadyExists),
            };
            match written {
                Ok(()) => return Ok(Ok(())),
                // Another node wrote first: read again.
                Err(true) => continue,
                Err(false) => return Err("the socket count could not be written".into()),
            }
        }
        Err("the socket count kept changing under this node".into())
    }
}
