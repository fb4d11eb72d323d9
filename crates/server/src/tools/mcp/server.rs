//! One MCP server, kept connected: start it (or reach its URL), list its
//! tools into the registry, list them again when it says they changed, and
//! when the connection ends mark its tools unavailable and start it again
//! after a growing pause ([`Backoff`]).

use std::{
    collections::BTreeSet,
    process::Stdio,
    sync::{Arc, RwLock},
    time::Instant,
};

use anyhow::Context as _;
use colloquy_ai::ToolDefinition;
use rmcp::{
    model::Tool as RemoteTool,
    service::{NotificationContext, Peer, RunningService},
    transport::{async_rw::AsyncRwTransport, StreamableHttpClientTransport},
    ClientHandler, RoleClient, ServiceExt,
};
use serde_json::Value;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::{
    tool::{offered_name, McpTool},
    Backoff,
};
use crate::{
    config::tools::McpServerConfig,
    tools::{ToolRegistry, ToolSettings},
};

/// What the tools of one server share: its current connection, if any.
pub(super) struct ServerLink {
    pub name: String,
    // A short std lock: read to clone the peer, written on (re)connect and loss.
    peer: RwLock<Option<Peer<RoleClient>>>,
}

impl ServerLink {
    /// The live connection, or `None` while the server is down.
    pub fn peer(&self) -> Option<Peer<RoleClient>> {
        self.peer
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    fn set_peer(&self, peer: Option<Peer<RoleClient>>) {
        *self
            .peer
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = peer;
    }
}

/// Our side of the connection: wakes the supervisor when the server's
/// tool list changes.
struct Handler {
    list_changed: Arc<Notify>,
}

impl ClientHandler for Handler {
    async fn on_tool_list_changed(&self, _context: NotificationContext<RoleClient>) {
        self.list_changed.notify_one();
    }
}

/// Everything one server's supervisor needs.
pub(super) struct Supervisor {
    pub config: McpServerConfig,
    pub registry: Arc<ToolRegistry>,
    pub settings: ToolSettings,
    pub backoff: Backoff,
    /// Longest message a stdio server may send (one line of JSON).
    pub max_message_bytes: usize,
    pub stop: CancellationToken,
}

/// A connection to a server, with the process we started for it (stdio):
/// dropping it kills the process.
struct Connection {
    service: RunningService<RoleClient, Handler>,
    _child: Option<tokio::process::Child>,
}

impl Supervisor {
    /// Keep the server connected until `stop`; `ready` is notified once the
    /// first attempt is over (connected and listed, or failed).
    pub async fn run(self, ready: Arc<Notify>) {
        let link = Arc::new(ServerLink {
            name: self.config.name.clone(),
            peer: RwLock::new(None),
        });
        let mut offered = BTreeSet::new();
        let mut pause = self.backoff.first();
        loop {
            let list_changed = Arc::new(Notify::new());
            let connected = tokio::select! {
                () = self.stop.cancelled() => break,
                connected = self.connect(list_changed.clone()) => connected,
            };
            match connected {
                Ok(connection) => {
                    let since = Instant::now();
                    self.serve(
                        connection.service,
                        &link,
                        &mut offered,
                        &list_changed,
                        &ready,
                    )
                    .await;
                    link.set_peer(None);
                    if since.elapsed() > self.backoff.max {
                        pause = self.backoff.first();
                    }
                    tracing::warn!(server = %self.config.name, "MCP server stopped; its tools are unavailable until it is back");
                }
                Err(error) => {
                    tracing::warn!(server = %self.config.name, error = %format!("{error:#}"), "cannot start MCP server");
                }
            }
            ready.notify_one();
            tokio::select! {
                () = self.stop.cancelled() => break,
                () = tokio::time::sleep(pause) => {}
            }
            pause = self.backoff.next(pause);
        }
        link.set_peer(None);
    }

    /// Start or reach the server and complete the MCP handshake, within the
    /// tool time limit.
    async fn connect(&self, list_changed: Arc<Notify>) -> anyhow::Result<Connection> {
        let handler = Handler { list_changed };
        let handshake = async {
            match (&self.config.command, &self.config.url) {
                (Some(command), _) => {
                    let mut child = tokio::process::Command::new(command)
                        .args(&self.config.args)
                        .stdin(Stdio::piped())
                        .stdout(Stdio::piped())
                        .kill_on_drop(true)
                        .spawn()
                        .context("starting it")?;
                    let (Some(stdout), Some(stdin)) = (child.stdout.take(), child.stdin.take())
                    else {
                        anyhow::bail!("its stdio was not piped");
                    };
                    // rmcp drops (and logs) a line longer than the cap
                    // while reading it, so a server sending one giant
                    // message cannot make us buffer it; a call waiting for
                    // that message ends with `timeout`.
                    let transport = AsyncRwTransport::new_client(stdout, stdin)
                        .with_max_line_length(self.max_message_bytes);
                    let service = handler.serve(transport).await.context("handshake")?;
                    Ok(Connection {
                        service,
                        _child: Some(child),
                    })
                }
                (None, Some(url)) => {
                    install_crypto_provider();
                    let transport = StreamableHttpClientTransport::from_uri(url.as_str());
                    let service = handler.serve(transport).await.context("handshake")?;
                    Ok(Connection {
                        service,
                        _child: None,
                    })
                }
                (None, None) => anyhow::bail!("neither command nor url"),
            }
        };
        tokio::time::timeout(self.settings.call_timeout, handshake)
            .await
            .context("no answer in time")?
    }

    /// List the tools, then follow the connection until it ends (or
    /// `stop`), listing again on `notifications/tools/list_changed`.
    async fn serve(
        &self,
        service: RunningService<RoleClient, Handler>,
        link: &Arc<ServerLink>,
        offered: &mut BTreeSet<String>,
        list_changed: &Notify,
        ready: &Notify,
    ) {
        let peer = service.peer().clone();
        if let Err(error) = self.list(&peer, link, offered).await {
            tracing::warn!(server = %self.config.name, error = %format!("{error:#}"), "cannot list the MCP server's tools");
            let _ = service.cancel().await;
            return;
        }
        link.set_peer(Some(peer.clone()));
        tracing::info!(server = %self.config.name, tools = offered.len(), "MCP server ready");
        ready.notify_one();
        let closed = service.cancellation_token();
        let waiting = service.waiting();
        tokio::pin!(waiting);
        loop {
            tokio::select! {
                _ = &mut waiting => return,
                () = self.stop.cancelled() => {
                    closed.cancel();
                    let _ = waiting.await;
                    return;
                }
                () = list_changed.notified() => {
                    if let Err(error) = self.list(&peer, link, offered).await {
                        tracing::warn!(server = %self.config.name, error = %format!("{error:#}"), "cannot list the MCP server's tools again");
                    }
                }
            }
        }
    }

    /// Register the server's tools (replacing the previous list, dropping
    /// the tools it no longer has).
    async fn list(
        &self,
        peer: &Peer<RoleClient>,
        link: &Arc<ServerLink>,
        offered: &mut BTreeSet<String>,
    ) -> anyhow::Result<()> {
        let tools = tokio::time::timeout(self.settings.call_timeout, peer.list_all_tools())
            .await
            .context("no answer in time")??;
        let mut now = BTreeSet::new();
        for remote in tools.into_iter().take(super::MAX_TOOLS_PER_SERVER) {
            let Some(tool) = self.tool(remote, link) else {
                continue;
            };
            let name = tool.definition.name.clone();
            match self.registry.register_external(Arc::new(tool)) {
                Ok(true) => {
                    now.insert(name);
                }
                Ok(false) => {}
                Err(error) => {
                    tracing::warn!(server = %self.config.name, %error, "an MCP tool is not offered")
                }
            }
        }
        for gone in offered.difference(&now) {
            self.registry.unregister(gone);
        }
        *offered = now;
        Ok(())
    }

    /// Our view of one listed tool, if its name can be offered.
    fn tool(&self, remote: RemoteTool, link: &Arc<ServerLink>) -> Option<McpTool> {
        let Some(name) = offered_name(&self.config.name, &remote.name) else {
            tracing::warn!(server = %self.config.name, tool = %remote.name, "an MCP tool's name is too long to offer");
            return None;
        };
        Some(McpTool {
            link: link.clone(),
            remote_name: remote.name.to_string(),
            definition: ToolDefinition {
                name,
                description: remote
                    .description
                    .map(|d| d.to_string())
                    .unwrap_or_default(),
                parameters: Value::Object((*remote.input_schema).clone()),
            },
            max_result_bytes: self.settings.max_result_bytes,
        })
    }
}

/// rmcp's HTTP client is built without a TLS crypto provider (so that only
/// ring is compiled, as elsewhere in Colloquy): make ring the process's
/// default once. Failing means one is already installed, which is as good.
fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
