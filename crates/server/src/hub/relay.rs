//! The hook that carries a hub's events to other nodes (cluster mode).
//!
//! The hub stays in-process and knows nothing of the broker: a node with a
//! relay makes each conversation event durable in the broker before any
//! local subscriber sees it, builds a channel that is new in memory from the
//! broker's history of that conversation, and is fed the events other nodes
//! publish ([`super::ConversationChannel::inject`]). Without a relay (one
//! node, the embedded default) none of this happens.

use std::sync::Arc;

use futures::future::BoxFuture;
use uuid::Uuid;

use super::Published;

/// One event as the broker holds it.
#[derive(Debug, Clone)]
pub struct Relayed {
    /// The broker's own sequence number (global across conversations).
    pub stream_seq: u64,
    pub published: Arc<Published>,
}

/// Carries events between nodes.
pub trait Relay: Send + Sync + 'static {
    /// Make `event` of `conversation` durable in the broker. `expected` is
    /// the broker sequence of the conversation's previous event this node
    /// knows of (`None`: none): a write by anyone else since then is refused.
    /// Returns the event's broker sequence, or `None` when it could not be
    /// relayed (the broker unreachable, or another writer); the event is
    /// still delivered locally.
    fn publish<'a>(
        &'a self,
        conversation: Uuid,
        event: &'a Published,
        expected: Option<u64>,
    ) -> BoxFuture<'a, Option<u64>>;

    /// Every event of `conversation` the broker still holds, oldest first
    /// (empty when it holds none or cannot be reached).
    fn history(&self, conversation: Uuid) -> BoxFuture<'_, Vec<Relayed>>;

    /// The broker sequence of the newest event of `conversation`, and that
    /// event's `seq`; `None` when the broker holds none (or is unreachable).
    fn newest(&self, conversation: Uuid) -> BoxFuture<'_, Option<(u64, u64)>>;

    /// Send a user event to that user's sockets on other nodes (best effort:
    /// user events are hints to refresh a list, not numbered).
    fn publish_to_user(&self, user: Uuid, event: &Published);
}
