//! What a node reports about its cluster membership: in `/healthz` (for a
//! load balancer and an operator) and in `/metrics`.

use prometheus_client::{
    encoding::text::encode_registry,
    metrics::{counter::Counter, gauge::Gauge},
    registry::Registry,
};
use serde_json::{json, Value};

use super::Cluster;

impl Cluster {
    /// Whether NATS is reachable, for `/healthz`. While it is not, the node
    /// keeps serving its own sockets but refuses new messages with a
    /// retryable `unavailable` (it cannot hold a conversation's lease).
    pub fn health(&self) -> Value {
        json!({
            "node": self.node,
            "nats": if self.connected() { "connected" } else { "disconnected" },
            "leases_held": self.leases.held_count(),
        })
    }

    /// This node's cluster figures in the text exposition (no `# EOF`).
    pub fn render_into(&self, out: &mut String) {
        let mut registry = Registry::with_prefix("colloquy_cluster");
        let connected = Gauge::<i64>::default();
        connected.set(i64::from(self.connected()));
        registry.register("nats_connected", "1 while NATS is reachable", connected);
        let leases = Gauge::<i64>::default();
        leases.set(i64::try_from(self.leases.held_count()).unwrap_or(i64::MAX));
        registry.register(
            "leases_held",
            "Conversations this node writes to right now",
            leases,
        );
        let failures = Counter::<u64>::default();
        failures.inc_by(self.relay_failures());
        registry.register(
            "relay_failures",
            "Events that could not be put in the stream (NATS down, or a second writer)",
            failures,
        );
        if let Err(error) = encode_registry(out, &registry) {
            tracing::error!(%error, "encoding cluster metrics failed");
        }
    }
}
