//! MCP servers as tool sources (`[[tools.mcp]]`), through the official
//! SDK (`rmcp`): each server has a supervisor task ([`server`]) that keeps
//! it connected and its tools registered, offered as `<server>__<tool>`
//! ([`tool`]). While a server is down its tools are not offered and calls
//! to them fail with `tool_unavailable`; it is restarted after a pause that
//! doubles on each failure in a row ([`Backoff`]).

mod server;
mod tool;

use std::{sync::Arc, time::Duration};

use tokio::{sync::Notify, task::JoinHandle};
use tokio_util::sync::CancellationToken;

use self::server::Supervisor;
use super::{ToolRegistry, ToolSettings};
use crate::config::tools::McpServerConfig;

/// Most tools one server may contribute: the rest of its list is ignored,
/// so a server cannot flood every request to the model.
pub const MAX_TOOLS_PER_SERVER: usize = 64;

/// Pauses between restarts: from `min`, doubling, up to `max`.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    pub min: Duration,
    pub max: Duration,
}

impl Backoff {
    pub fn new(min: Duration, max: Duration) -> Self {
        Self {
            min,
            max: max.max(min),
        }
    }

    fn first(&self) -> Duration {
        self.min
    }

    fn next(&self, pause: Duration) -> Duration {
        pause.saturating_mul(2).min(self.max)
    }
}

/// How servers are run: the pauses between restarts, and the longest
/// message a stdio server may send.
#[derive(Debug, Clone, Copy)]
pub struct McpSettings {
    pub restart: Backoff,
    pub max_message_bytes: usize,
}

/// The running supervisors; [`McpServers::stop`] ends them (and the
/// servers they started). Dropping it stops them too.
pub struct McpServers {
    stop: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
}

impl McpServers {
    /// Start a supervisor per server and wait (up to the tool time limit)
    /// for each first attempt, so a server that starts fine offers its
    /// tools from the first reply on. One that does not is retried in the
    /// background.
    pub async fn start(
        configs: &[McpServerConfig],
        registry: Arc<ToolRegistry>,
        mcp: McpSettings,
    ) -> Self {
        let stop = CancellationToken::new();
        let settings: ToolSettings = registry.settings();
        let mut tasks = Vec::with_capacity(configs.len());
        let mut readiness = Vec::with_capacity(configs.len());
        for config in configs {
            let ready = Arc::new(Notify::new());
            let supervisor = Supervisor {
                config: config.clone(),
                registry: registry.clone(),
                settings,
                backoff: mcp.restart,
                max_message_bytes: mcp.max_message_bytes,
                stop: stop.child_token(),
            };
            tasks.push(tokio::spawn(supervisor.run(ready.clone())));
            readiness.push(ready);
        }
        // Connecting and listing are each bounded by the call time limit.
        let wait = settings.call_timeout.saturating_mul(2);
        let first_attempts = futures::future::join_all(readiness.iter().map(|r| r.notified()));
        if tokio::time::timeout(wait, first_attempts).await.is_err() {
            tracing::warn!("some MCP servers are still starting");
        }
        Self { stop, tasks }
    }

    /// No servers.
    pub fn none() -> Self {
        Self {
            stop: CancellationToken::new(),
            tasks: Vec::new(),
        }
    }

    /// Disconnect every server (stopping those we started) and wait for it.
    pub async fn stop(mut self) {
        self.stop.cancel();
        for task in self.tasks.drain(..) {
            let _ = task.await;
        }
    }
}

impl Drop for McpServers {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pauses_double_up_to_the_maximum() {
        let backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(2));
        let mut pause = backoff.first();
        let mut seen = vec![pause];
        for _ in 0..3 {
            pause = backoff.next(pause);
            seen.push(pause);
        }
        assert_eq!(
            seen,
            [500, 1000, 2000, 2000].map(Duration::from_millis).to_vec()
        );
    }

    #[tokio::test]
    async fn an_unreachable_http_server_offers_nothing_and_is_retried() {
        let registry = Arc::new(ToolRegistry::new(ToolSettings {
            call_timeout: Duration::from_secs(2),
            max_result_bytes: 1024,
        }));
        let config = McpServerConfig {
            name: "remote".into(),
            command: None,
            args: Vec::new(),
            // Port 1: nothing listens there.
            url: Some("http://127.0.0.1:1/mcp".into()),
        };
        let settings = McpSettings {
            restart: Backoff::new(Duration::from_millis(10), Duration::from_millis(50)),
            max_message_bytes: 1024,
        };
        let servers = McpServers::start(&[config], registry.clone(), settings).await;
        assert!(registry.definitions().is_empty());
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(
            !servers.tasks[0].is_finished(),
            "the supervisor keeps retrying (and building the HTTP client did not panic)"
        );
        servers.stop().await;
    }
}
