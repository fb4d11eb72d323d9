//! The `[cluster]` settings: how a node shares conversations with the
//! others when `nats_url` turns cluster mode on.

use std::time::Duration;

use anyhow::bail;
use serde::{Deserialize, Serialize};

/// Cluster mode (`[cluster]`; only read when `nats_url` is set).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct ClusterConfig {
    /// Prefix of the NATS subjects, stream and bucket this cluster uses:
    /// clusters sharing one NATS server need different ones.
    pub namespace: String,
    /// How long a conversation stays held by a node that stopped renewing
    /// its lease (killed): within this time another node finishes its
    /// reply as interrupted and takes its messages.
    pub lease_ttl_secs: u64,
    /// How long the event stream keeps events (finished messages are in the database).
    pub event_retention_secs: u64,
    /// Most events the stream keeps per conversation.
    pub events_per_conversation: u32,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        Self {
            namespace: "colloquy".into(),
            lease_ttl_secs: 10,
            event_retention_secs: 3600,
            events_per_conversation: 10_000,
        }
    }
}

impl ClusterConfig {
    pub(super) fn validate(&self) -> anyhow::Result<()> {
        let namespace_ok = !self.namespace.is_empty()
            && self.namespace.len() <= 64
            && self
                .namespace
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if !namespace_ok {
            bail!("invalid configuration: cluster.namespace must be 1 to 64 letters, digits, `_` or `-`");
        }
        if self.lease_ttl_secs < 2 {
            bail!("invalid configuration: cluster.lease_ttl_secs must be at least 2");
        }
        if self.event_retention_secs < 60 || self.events_per_conversation == 0 {
            bail!("invalid configuration: cluster.event_retention_secs must be at least 60 and cluster.events_per_conversation above 0");
        }
        Ok(())
    }

    /// The settings a node joins with, for NATS at `url`.
    pub fn settings(&self, url: &str) -> crate::cluster::ClusterSettings {
        crate::cluster::ClusterSettings {
            url: url.to_owned(),
            namespace: self.namespace.clone(),
            lease_ttl: Duration::from_secs(self.lease_ttl_secs),
            event_retention: Duration::from_secs(self.event_retention_secs),
            events_per_conversation: i64::from(self.events_per_conversation),
        }
    }
}
