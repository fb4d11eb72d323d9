//! Colloquy: a real-time AI chat server. Text chat over WebSocket with
//! token-by-token streaming, durable conversations, token auth, and HTTP
//! endpoints for everything that is not real-time.
//!
//! # Layout
//! - [`config`]: one typed configuration (defaults, file, env, flags).
//! - [`auth`]: password hashes, access tokens, the [`auth::AuthUser`] and
//!   [`auth::AdminUser`] extractors; external identity provider tokens
//!   (`external`, keys from a cached JWKS in `jwks`).
//! - [`billing`]: plans and their daily quotas, checked before every turn;
//!   usage metering (stored with each reply) and its `/metrics` counters.
//! - [`client_ip`]: the client address of a request (trusted proxies aside).
//! - [`store`]: SQLite persistence (users, conversations, messages, coaching
//!   profiles, plans and steps, turn timings, conversation summaries, reply
//!   checkpoints) and migrations.
//! - [`hub`]: per-conversation event numbering and fan-out to subscribers
//!   (`registry` of held channels, `channel` numbering and replay, `user`
//!   channels, the `relay` hook that carries events between nodes).
//! - [`cluster`]: cluster mode over NATS: the event stream, conversation
//!   leases, forwarding a message to the node that holds its conversation.
//! - [`turn`]: one reply from user message to stored assistant message
//!   (`reply` task, `publish`, `events`, `checkpoint`, `recovery` after a crash,
//!   `summary` and the `rolling` summary of trimmed history, timings).
//! - [`tools`]: what the model may call during a reply: the registry
//!   (schema checks, time and size limits), the built-in tools, MCP
//!   servers and webhook tools.
//! - [`conversation`]: opening a conversation with ownership checks; a new
//!   one is stored with its first message, its id reserved meanwhile.
//! - [`input`]: client input parsed into valid types.
//! - [`models`]: the models a message may pick (`model`, then `[[models]]`).
//! - [`limits`]: rate limits, sockets per user and in total, sign-up and
//!   sign-in throttles, password hashing slots, Origin allow-list.
//! - [`http`]: REST endpoints and the HTTP chat fallbacks.
//! - [`socket`]: what every socket shares: upgrade checks, close codes, and
//!   the heartbeat and shutdown skeleton of every socket loop.
//! - [`ws`]: the JSON chat sockets: the session loop, audio decoding.
//! - [`voice`]: speech in and out: engines, the voice pipeline (listen, speak,
//!   barge-in), the binary voice socket and its Gemini Live bridge, turn timings.
//! - [`stripe`]: Stripe billing: webhook signatures and events, Checkout.
//! - [`error`]: the JSON error type of the HTTP API.

pub mod auth;
pub mod billing;
pub mod client_ip;
pub mod cluster;
pub mod config;
pub mod conversation;
pub mod error;
pub mod http;
pub mod hub;
pub mod input;
pub mod limits;
pub mod models;
pub mod socket;
pub mod store;
pub mod streak;
pub mod stripe;
mod time;
pub mod tools;
pub mod turn;
pub mod voice;
pub mod ws;

use std::{future::Future, net::SocketAddr, sync::Arc, time::Duration};

use anyhow::Context;
use axum::serve::ListenerExt;
use tokio::net::TcpListener;
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use crate::{
    auth::TokenService,
    cluster::Cluster,
    config::Config,
    hub::{ChannelSizes, Hub, Relay},
    turn::{TurnService, TurnSettings},
};

/// Shared state of every handler: cheap to clone (`Arc`s and a pool).
#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub db: store::Pool,
    pub tokens: Arc<TokenService>,
    /// External identity provider tokens (`auth.jwks_url`,
    /// `auth.external_hs256_secret`); `None` when not configured.
    pub external_tokens: Option<Arc<auth::external::ExternalTokens>>,
    pub hub: Arc<Hub>,
    pub turns: Arc<TurnService>,
    pub limits: Arc<limits::Limits>,
    pub streaks: streak::Streaks,
    /// Plans, quotas and usage.
    pub billing: billing::Billing,
    pub voice: Arc<voice::VoiceService>,
    pub lifecycle: Lifecycle,
    /// Cluster mode (`nats_url`); `None` for a single node.
    pub cluster: Option<Arc<Cluster>>,
    /// Stripe's API (`STRIPE_API_KEY`); `None` when billing is not set up.
    pub stripe: Option<Arc<stripe::checkout::StripeClient>>,
}

/// What shutdown needs to reach: open sockets.
#[derive(Clone, Default)]
pub struct Lifecycle {
    /// Fired once in-flight replies are done: sockets close with 1012.
    pub close_sockets: CancellationToken,
    /// Every socket task, so shutdown can wait for them.
    pub sockets: TaskTracker,
}

/// A built server: bound listener plus state, ready to run.
pub struct App {
    listener: TcpListener,
    state: AppState,
    /// The MCP servers' supervisors, stopped after the last reply.
    mcp: tools::mcp::McpServers,
}

/// How long sockets get to close after being told to.
const SOCKET_CLOSE_WAIT: Duration = Duration::from_secs(5);

impl App {
    /// Prepare the data dir, open and migrate the database, load the token
    /// secret, build the configured model provider and bind the listener.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        std::fs::create_dir_all(&config.data_dir)
            .with_context(|| format!("cannot create data dir {}", config.data_dir.display()))?;
        let db = store::connect(store::ConnectOptions {
            url: &config.database_url(),
            synchronous: &config.sqlite_synchronous,
            max_connections: config.database_max_connections,
        })
        .await
        .context("opening the database")?;
        let limits = limits::Limits::new(&config);
        let cluster = match &config.nats_url {
            Some(url) => Some(
                Cluster::connect(config.cluster.settings(url), limits.clone())
                    .await
                    .context("joining the cluster")?,
            ),
            None => None,
        };
        if let Some(cluster) = &cluster {
            let sockets = cluster.sockets.clone();
            limits.on_socket_closed(Box::new(move |user| {
                let sockets = sockets.clone();
                tokio::spawn(async move { sockets.refresh(user).await });
            }));
        }
        let secret = auth::load_or_create_secret(config.jwt_secret.as_deref(), &config.data_dir)?;
        let tokens = TokenService::new(&secret, Duration::from_secs(config.token_ttl_secs));
        let external_tokens = auth::external::ExternalTokens::from_config(&config.auth.external)
            .context("setting up external sign-in")?
            .map(Arc::new);
        let stripe = stripe::checkout::StripeClient::from_config(&config.billing)
            .context("setting up Stripe")?
            .map(Arc::new);
        // Loading the embedded model reads ~100 MB and builds contexts: off the runtime.
        let models_config = config.clone();
        let models = tokio::task::spawn_blocking(move || models::Models::load(&models_config))
            .await
            .context("model loading task")??;
        match models.default_provider() {
            Some(provider) => tracing::info!(
                model = %provider.info().id(),
                choices = models.choices().len(),
                "model ready"
            ),
            None => tracing::warn!(
                "no AI model is configured: messages are stored and answered with a `no_model` error; \
                 set COLLOQUY_MODEL (e.g. `openai:gpt-4o-mini` with OPENAI_API_KEY, or OPENAI_BASE_URL for a local server)"
            ),
        }
        // Whisper and Piper read their model files: off the runtime too.
        let voice_config = config.clone();
        let voice = tokio::task::spawn_blocking(move || voice::VoiceService::load(&voice_config))
            .await
            .context("voice loading task")??;
        tracing::info!(engine = voice.name(), "voice ready");
        // One clock for streaks and quota days, so a test moves both.
        let clock = streak::Clock::default();
        let streaks = streak::Streaks::new(db.clone(), clock.clone(), config.streak_memory_users);
        let billing = billing::Billing::new(db.clone(), &config, clock);
        let (tool_registry, mcp) = build_tools(&config.tools).await?;
        let turns = TurnService::new(
            db.clone(),
            models,
            TurnSettings {
                system_prompt: config.system_prompt.clone(),
                history_budget_tokens: config.history_budget_tokens,
                max_reply_tokens: config.max_reply_tokens,
                max_reply_chars: config.max_reply_chars,
                checkpoint_interval: Duration::from_millis(config.reply_checkpoint_ms),
                prefills_per_minute: config.prefills_per_minute,
                max_pending_replies: config.max_pending_replies,
                max_concurrent_generations: config.max_concurrent_generations,
                auto_titles: config.auto_titles,
                max_tool_rounds: config.tools.max_tool_rounds,
                summary_limits: turn::SummaryLimits {
                    max_chars: config.summaries.max_chars,
                    max_tokens: config.summaries.max_tokens(),
                },
                rolling_summaries: config.summaries.rolling,
            },
            limits.clone(),
            streaks.clone(),
            cluster.clone(),
            billing.clone(),
        )
        .with_tools(tool_registry.clone());
        // Alone, whatever is unfinished was this node's. In a cluster other
        // nodes may be at work on it: abandoned replies are found by lease
        // (`turn::sweep_abandoned`) and titles are left as they are.
        if cluster.is_none() {
            store::release_pending_titles(&db)
                .await
                .context("releasing unfinished title generations")?;
            let repaired =
                turn::close_orphaned_replies(&db, turns.billing(), &turns.default_model_id())
                    .await
                    .context("closing replies left unfinished by a crash")?;
            if repaired > 0 {
                tracing::warn!(
                    repaired,
                    "stored replies a previous run left unfinished as interrupted"
                );
            }
        }
        let listener = TcpListener::bind(config.addr)
            .await
            .with_context(|| format!("cannot listen on {}", config.addr))?;
        let relay = cluster
            .as_ref()
            .map(|cluster| cluster::events::EventRelay::new(cluster.clone()) as Arc<dyn Relay>);
        let sizes = ChannelSizes {
            subscriber_buffer: config.conversation_buffer_events,
            replay_events: config.replay_buffer_events,
            linger: Duration::from_secs(config.replay_linger_secs),
            max_replay: config.max_replay_events,
        };
        let state = AppState {
            hub: Hub::with_relay(sizes, relay),
            cluster,
            config: Arc::new(config),
            db,
            tokens: Arc::new(tokens),
            external_tokens,
            stripe,
            turns: Arc::new(turns),
            limits,
            streaks,
            billing,
            voice: Arc::new(voice),
            lifecycle: Lifecycle::default(),
        };
        Ok(Self {
            listener,
            state,
            mcp,
        })
    }

    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The shared state (for tests and embedding).
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serve until `shutdown` resolves, then stop gracefully: refuse new
    /// connections and messages, let in-flight replies finish within the
    /// grace period (the rest are stored as interrupted), close sockets with
    /// 1012 and wait for them.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let state = self.state;
        let mcp = self.mcp;
        let stop_accepting = CancellationToken::new();
        let router = http::router(state.clone());
        // Events are small writes in quick succession: without TCP_NODELAY,
        // Nagle's algorithm holds each one until the previous is acknowledged,
        // which a delayed ACK can stretch to tens of milliseconds.
        let listener = self.listener.tap_io(|tcp| {
            if let Err(error) = tcp.set_nodelay(true) {
                tracing::debug!(%error, "cannot set TCP_NODELAY");
            }
        });
        // Each request learns its peer address (`ConnectInfo`), which the
        // per-address throttles count by.
        let server = axum::serve(
            listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(stop_accepting.clone().cancelled_owned());
        let server = tokio::spawn(async move { server.await });
        let pruning = tokio::spawn(limits::prune_idle_keys(
            state.limits.clone(),
            Duration::from_secs(state.config.rate_limit_prune_secs),
            stop_accepting.clone(),
        ));
        let retention = tokio::spawn(prune_old_analytics(
            state.db.clone(),
            state.config.analytics_retention_days,
            stop_accepting.clone(),
        ));
        // Cluster work goes on until the sockets are closed: replies still
        // finishing need their leases, and sockets other nodes' events.
        let leave_cluster = CancellationToken::new();
        let cluster_tasks = start_cluster_tasks(&state, &stop_accepting, &leave_cluster);
        shutdown.await;
        tracing::info!("shutting down: finishing in-flight replies");
        stop_accepting.cancel();
        let _ = pruning.await;
        let _ = retention.await;
        state
            .turns
            .drain(Duration::from_secs(state.config.shutdown_grace_secs))
            .await;
        mcp.stop().await;
        state.lifecycle.close_sockets.cancel();
        state.lifecycle.sockets.close();
        if tokio::time::timeout(SOCKET_CLOSE_WAIT, state.lifecycle.sockets.wait())
            .await
            .is_err()
        {
            tracing::warn!("some sockets did not close in time");
        }
        leave_cluster.cancel();
        for task in cluster_tasks {
            let _ = task.await;
        }
        match tokio::time::timeout(SOCKET_CLOSE_WAIT, server).await {
            Ok(joined) => joined.context("server task")?.context("server")?,
            Err(_) => tracing::warn!("HTTP connections still open at exit"),
        }
        state.db.close().await;
        tracing::info!("stopped");
        Ok(())
    }
}

/// The tools offered to the model: the enabled built-ins, the webhook
/// tools and the MCP servers' tools (whose supervisors are returned).
async fn build_tools(
    config: &config::tools::ToolsConfig,
) -> anyhow::Result<(Arc<tools::ToolRegistry>, tools::mcp::McpServers)> {
    let registry = Arc::new(
        tools::builtin::registry(&config.enabled, config.settings())
            .context("registering the built-in tools")?
            .allowing(config.allow_list()?),
    );
    for webhook in &config.http {
        let tool = tools::webhook::HttpTool::new(webhook, config.settings())?;
        registry
            .register_external(Arc::new(tool))
            .with_context(|| format!("registering the webhook tool {}", webhook.name))?;
    }
    let mcp = if config.mcp.is_empty() {
        tools::mcp::McpServers::none()
    } else {
        tools::mcp::McpServers::start(&config.mcp, registry.clone(), config.mcp_settings()).await
    };
    Ok((registry, mcp))
}

/// Cluster mode's background work: following other nodes' events, keeping
/// leases renewed, answering forwarded messages (until `stop_accepting`),
/// finishing abandoned replies (until `stop_accepting`).
fn start_cluster_tasks(
    state: &AppState,
    stop_accepting: &CancellationToken,
    leave: &CancellationToken,
) -> Vec<tokio::task::JoinHandle<()>> {
    let Some(cluster) = &state.cluster else {
        return Vec::new();
    };
    let handler = turn::submit_handler(state.hub.clone(), state.turns.clone());
    vec![
        tokio::spawn(cluster::events::follow_conversations(
            cluster.clone(),
            state.hub.clone(),
            leave.clone(),
        )),
        tokio::spawn(cluster::events::follow_users(
            cluster.clone(),
            state.hub.clone(),
            leave.clone(),
        )),
        tokio::spawn(cluster.leases.clone().keep_renewed(leave.clone())),
        tokio::spawn(cluster.sockets.clone().keep_fresh(leave.clone())),
        tokio::spawn(
            cluster
                .clone()
                .serve_forwarded(handler, stop_accepting.clone()),
        ),
        tokio::spawn(turn::sweep_abandoned(
            state.turns.clone(),
            state.hub.clone(),
            cluster.clone(),
            cluster.lease_ttl() / 2,
            stop_accepting.clone(),
        )),
    ]
}

/// Delete analytics events older than `retention_days`, at start and hourly.
async fn prune_old_analytics(db: store::Pool, retention_days: u32, stop: CancellationToken) {
    const EVERY: Duration = Duration::from_secs(3600);
    let keep = i64::from(retention_days) * store::DAY_MILLIS;
    let mut ticks = tokio::time::interval(EVERY);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => break,
            _ = ticks.tick() => {
                match store::prune_analytics_events(&db, store::now_millis() - keep).await {
                    Ok(0) => {}
                    Ok(deleted) => tracing::info!(deleted, "old analytics events deleted"),
                    Err(error) => tracing::warn!(%error, "pruning analytics events failed"),
                }
            }
        }
    }
}

/// Resolves on ctrl-c or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "cannot listen for ctrl-c");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}
