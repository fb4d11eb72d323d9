//! One typed configuration, read from defaults, then an optional TOML file,
//! then `COLLOQUY_*` environment variables, then command-line flags (each
//! overriding the one before). Provider keys come only from the environment.
//! Secrets never appear in `Debug` output or logs.

use std::{
    net::{IpAddr, SocketAddr},
    path::PathBuf,
    time::Duration,
};

use anyhow::{bail, Context};
use figment::{
    providers::{Env, Format, Serialized, Toml},
    Figment,
};
use serde::{Deserialize, Serialize};

mod auth;
mod billing;
mod cluster;
mod debug;
mod engines;
mod external_auth;
mod models;
pub mod plans;
mod summaries;
pub mod tools;
pub use auth::AuthLimitsConfig;
pub use billing::BillingConfig;
pub use cluster::ClusterConfig;
pub use engines::{AudioConfig, LocalModelConfig, DEFAULT_VOICE_INSTRUCTIONS};
pub use external_auth::{ExternalAuthConfig, MAX_JWKS_CACHE_SECS};
pub use models::{ModelEntry, MAX_MODEL_ID_CHARS};
pub use plans::PlanConfig;
pub use summaries::SummariesConfig;
pub use tools::ToolsConfig;

/// The default system instruction given to the model.
pub const DEFAULT_SYSTEM_PROMPT: &str =
    "You are Colloquy, a helpful, concise assistant. Answer clearly and truthfully.";

/// Everything the server can be configured with.
#[derive(Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    /// Address to listen on (`COLLOQUY_ADDR`).
    pub addr: SocketAddr,
    /// Where the database, the generated JWT secret and models live (`COLLOQUY_DATA_DIR`).
    pub data_dir: PathBuf,
    /// Database URL (`DATABASE_URL`); SQLite at `<data dir>/colloquy.db` when unset.
    pub database_url: Option<String>,
    /// HMAC secret for access tokens (`COLLOQUY_JWT_SECRET`); generated and
    /// kept in the data dir when unset.
    pub jwt_secret: Option<String>,
    /// Which model the selector builds (`COLLOQUY_MODEL`): `local`, `openai[:model]`, `none`.
    pub model: Option<String>,
    /// OpenAI-compatible server base URL (`OPENAI_BASE_URL`).
    pub openai_base_url: Option<String>,
    /// More models users may pick per message (`[[models]]`), after the default one.
    pub models: Vec<ModelEntry>,
    /// Lifetime of issued access tokens.
    pub token_ttl_secs: u64,
    /// System instruction placed before every conversation.
    pub system_prompt: String,
    /// Token budget of the history sent to the model (system + newest turns).
    pub history_budget_tokens: usize,
    /// Cap on tokens generated for one reply.
    pub max_reply_tokens: u32,
    /// Longest user message accepted, in characters.
    pub max_message_chars: usize,
    /// Largest WebSocket message accepted, in bytes.
    pub max_frame_bytes: usize,
    /// Largest HTTP request body accepted, in bytes (413 beyond it).
    pub max_body_bytes: usize,
    /// How often the server pings each socket.
    pub heartbeat_interval_secs: u64,
    /// A socket silent for this long is considered dead and dropped.
    pub heartbeat_timeout_secs: u64,
    /// Time allowed to connect to a cloud provider.
    pub provider_connect_timeout_secs: u64,
    /// Longest silence from a cloud provider before the reply fails with a time-out.
    pub provider_idle_timeout_secs: u64,
    /// On shutdown, how long in-flight replies may run before they are stored as interrupted.
    pub shutdown_grace_secs: u64,
    /// Longest an HTTP request may take to answer (504 with a JSON error
    /// beyond it). A stream's body is not counted: see `sse_idle_timeout_secs`.
    pub request_timeout_secs: u64,
    /// An SSE reply stream with no event for this long ends with an `error` event.
    pub sse_idle_timeout_secs: u64,
    /// A streaming reply's text is saved at most this long after it grew, so
    /// a crash loses at most that much of what listeners saw (0: every delta).
    pub reply_checkpoint_ms: u64,
    /// `resume` requests per minute one socket may send (each may read history back).
    pub resumes_per_minute_per_socket: u32,
    /// Most events one resume replays; a longer gap gets `resync_required`
    /// (the client reloads the conversation over HTTP, a page at a time).
    pub max_replay_events: usize,
    /// Voice sessions (voice sockets, chat sockets sending audio) served at
    /// once; more are refused (1013 or an `overloaded` error).
    pub max_voice_sessions: usize,
    /// Replies generated at once across the server, whatever the provider
    /// (cloud calls cost money); a reply beyond it fails with `overloaded`.
    pub max_concurrent_generations: usize,
    /// Replies one conversation may have waiting or running at once; more
    /// messages are refused with `busy` until they finish.
    pub max_pending_replies: usize,
    /// Model prefills (a voice session reading its instruction ahead of the
    /// first turn) allowed per minute, server-wide.
    pub prefills_per_minute: u32,
    /// Users this node remembers as counted for their day's streak (so a
    /// user's later messages that day skip the database); cleared when full.
    pub streak_memory_users: usize,
    /// Events buffered per conversation for its subscribers before a slow one falls behind.
    pub conversation_buffer_events: usize,
    /// Newest events of each live conversation kept in memory for exact resume.
    pub replay_buffer_events: usize,
    /// Seconds a conversation's events stay in memory after its last socket
    /// leaves, so a quick reconnect replays exactly from memory.
    pub replay_linger_secs: u64,
    /// Origins (exact `scheme://host[:port]`) allowed to open sockets besides
    /// the server's own; `*` allows any. Clients that send no Origin (not
    /// browsers) are not affected.
    pub allowed_origins: Vec<String>,
    /// Open sockets allowed per user (tabs and devices).
    pub max_sockets_per_user: usize,
    /// Open sockets allowed in total; beyond it sockets close with 1013.
    pub max_connections: usize,
    /// `text` messages per minute one socket may send.
    pub messages_per_minute_per_socket: u32,
    /// `text` messages per minute one user may send across all sockets and HTTP.
    pub messages_per_minute_per_user: u32,
    /// `POST /api/analytics/events` batches per minute one user may send.
    pub analytics_batches_per_minute_per_user: u32,
    /// Analytics events older than this many days are deleted (checked hourly).
    pub analytics_retention_days: u32,
    /// After a new conversation's first reply, ask the model for a short title.
    pub auto_titles: bool,
    /// Share links created and shared conversations forked, per user per hour.
    pub shares_per_hour_per_user: u32,
    /// Shared conversations read per minute from one address (no sign-in needed).
    pub shared_reads_per_minute_per_ip: u32,
    /// Inbound frames per second one socket may send (any kind).
    pub frames_per_second_per_socket: u32,
    /// Rate-limited frames in a row after which a socket is closed (1008).
    pub rate_limit_strikes: u32,
    /// How often rate limiters keyed by user, address or email forget the
    /// keys that have been idle long enough to be back to a full budget.
    pub rate_limit_prune_secs: u64,
    /// Reverse proxies whose `X-Forwarded-For` names the client. Empty: the
    /// socket's peer address is the client, whatever the header says.
    pub trusted_proxies: Vec<IpAddr>,
    /// Users (ids or emails) who may read `/metrics`.
    pub admins: Vec<String>,
    /// Sign-up and sign-in throttles, and the password hashing budget.
    pub auth: AuthLimitsConfig,
    /// Longest reply, in characters; generation stops there. Must fit a frame.
    pub max_reply_chars: usize,
    /// Per-socket read buffer (small keeps 10,000 idle sockets cheap).
    pub socket_read_buffer_bytes: usize,
    /// Most unsent bytes buffered per socket before writes wait.
    pub socket_max_write_buffer_bytes: usize,
    /// SQLite `synchronous` level: `full` (durable on power loss) or `normal` (durable on crash).
    pub sqlite_synchronous: String,
    /// Most database connections this node opens (per node on PostgreSQL).
    pub database_max_connections: u32,
    /// NATS server (`COLLOQUY_NATS_URL`, e.g. `nats://127.0.0.1:4222`):
    /// turns on cluster mode. Unset: one node, no broker.
    pub nats_url: Option<String>,
    /// Cluster mode.
    pub cluster: ClusterConfig,
    /// The embedded model.
    pub local: LocalModelConfig,
    /// Voice engine: `local` (Whisper + Piper in process; the default in a
    /// build with `voice-local`), `gemini-live`, or `none`.
    pub voice: Option<String>,
    /// Gemini Live model (with `voice = "gemini-live"`); `GEMINI_LIVE_MODEL`
    /// or the client's default when unset.
    pub gemini_live_model: Option<String>,
    /// Gemini Live WebSocket endpoint; `GEMINI_LIVE_ENDPOINT` or Google's when unset.
    pub gemini_live_endpoint: Option<String>,
    /// The voice pipeline.
    pub audio: AudioConfig,
    /// Tools the model may call, and the agent loop's limits.
    pub tools: ToolsConfig,
    /// Conversation summaries, on request and rolling.
    pub summaries: SummariesConfig,
    /// Plans by name (`[plans.<name>]`), on top of the built-in `free` and
    /// `anonymous` ones (see [`plans`]).
    pub plans: std::collections::BTreeMap<String, PlanConfig>,
    /// The plan of signed-in users with no plan of their own.
    pub default_plan: String,
    /// The plan of guest users.
    pub anonymous_plan: String,
    /// Stripe billing: prices of plans, Checkout return URLs, webhook tolerance.
    pub billing: BillingConfig,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from("data"),
            database_url: None,
            jwt_secret: None,
            model: None,
            openai_base_url: None,
            models: Vec::new(),
            token_ttl_secs: 7 * 24 * 3600,
            system_prompt: DEFAULT_SYSTEM_PROMPT.into(),
            history_budget_tokens: 3000,
            max_reply_tokens: 1024,
            max_message_chars: 16_000,
            max_frame_bytes: 256 * 1024,
            max_body_bytes: 1024 * 1024,
            heartbeat_interval_secs: 20,
            heartbeat_timeout_secs: 60,
            provider_connect_timeout_secs: 10,
            provider_idle_timeout_secs: 60,
            shutdown_grace_secs: 10,
            request_timeout_secs: 120,
            sse_idle_timeout_secs: 120,
            reply_checkpoint_ms: 500,
            max_concurrent_generations: 256,
            max_voice_sessions: 16,
            resumes_per_minute_per_socket: 30,
            max_replay_events: 2048,
            max_pending_replies: 8,
            prefills_per_minute: 60,
            streak_memory_users: 100_000,
            // Preallocated per live conversation (about 32 bytes an event,
            // so it is a large part of an idle socket); three 20-token
            // replies' worth. A socket that falls further behind is closed
            // (1013) and resumes exactly from the replay ring.
            conversation_buffer_events: 64,
            replay_buffer_events: 2048,
            replay_linger_secs: 60,
            sqlite_synchronous: "full".into(),
            database_max_connections: 8,
            nats_url: None,
            cluster: ClusterConfig::default(),
            allowed_origins: Vec::new(),
            max_sockets_per_user: 32,
            max_connections: 20_000,
            messages_per_minute_per_socket: 60,
            messages_per_minute_per_user: 120,
            analytics_batches_per_minute_per_user: 30,
            analytics_retention_days: 400,
            auto_titles: true,
            shares_per_hour_per_user: 60,
            shared_reads_per_minute_per_ip: 120,
            frames_per_second_per_socket: 50,
            rate_limit_strikes: 20,
            rate_limit_prune_secs: 60,
            trusted_proxies: Vec::new(),
            admins: Vec::new(),
            auth: AuthLimitsConfig::default(),
            max_reply_chars: 32_000,
            socket_read_buffer_bytes: 2048,
            socket_max_write_buffer_bytes: 1024 * 1024,
            local: LocalModelConfig::default(),
            voice: None,
            gemini_live_model: None,
            gemini_live_endpoint: None,
            audio: AudioConfig::default(),
            tools: ToolsConfig::default(),
            summaries: SummariesConfig::default(),
            plans: Default::default(),
            default_plan: plans::DEFAULT_PLAN.into(),
            anonymous_plan: plans::ANONYMOUS_PLAN.into(),
            billing: BillingConfig::default(),
        }
    }
}

/// Values given on the command line; `None` leaves the lower layers alone.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Overrides {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub addr: Option<SocketAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
}

impl Config {
    /// Load the layered configuration. `file` is the TOML file to read, if any.
    pub fn load(file: Option<&std::path::Path>, overrides: &Overrides) -> anyhow::Result<Self> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(path) = file {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read config file {}", path.display()))?;
            check_file_keys(&text).with_context(|| format!("in config file {}", path.display()))?;
            figment = figment.merge(Toml::string(&text));
        }
        let mut config: Config = figment
            .merge(
                Env::prefixed("COLLOQUY_")
                    .split("__")
                    .filter(|key| key.as_str() != "config" && key.as_str() != "log"),
            )
            .merge(Env::raw().only(&["DATABASE_URL", "OPENAI_BASE_URL"]))
            .merge(Serialized::defaults(overrides))
            .extract()
            .map_err(|e| anyhow::anyhow!("invalid configuration: {e}"))?;
        config.billing.read_secrets();
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> anyhow::Result<()> {
        let positive = [
            ("token_ttl_secs", self.token_ttl_secs as usize),
            ("history_budget_tokens", self.history_budget_tokens),
            ("max_reply_tokens", self.max_reply_tokens as usize),
            ("max_message_chars", self.max_message_chars),
            ("max_frame_bytes", self.max_frame_bytes),
            ("max_body_bytes", self.max_body_bytes),
            ("request_timeout_secs", self.request_timeout_secs as usize),
            ("sse_idle_timeout_secs", self.sse_idle_timeout_secs as usize),
            ("max_pending_replies", self.max_pending_replies),
            ("max_replay_events", self.max_replay_events),
            ("max_voice_sessions", self.max_voice_sessions),
            (
                "resumes_per_minute_per_socket",
                self.resumes_per_minute_per_socket as usize,
            ),
            (
                "max_concurrent_generations",
                self.max_concurrent_generations,
            ),
            ("prefills_per_minute", self.prefills_per_minute as usize),
            ("streak_memory_users", self.streak_memory_users),
            (
                "heartbeat_interval_secs",
                self.heartbeat_interval_secs as usize,
            ),
            (
                "provider_connect_timeout_secs",
                self.provider_connect_timeout_secs as usize,
            ),
            (
                "provider_idle_timeout_secs",
                self.provider_idle_timeout_secs as usize,
            ),
            (
                "conversation_buffer_events",
                self.conversation_buffer_events,
            ),
            ("max_sockets_per_user", self.max_sockets_per_user),
            ("max_connections", self.max_connections),
            ("rate_limit_prune_secs", self.rate_limit_prune_secs as usize),
            (
                "messages_per_minute_per_socket",
                self.messages_per_minute_per_socket as usize,
            ),
            (
                "messages_per_minute_per_user",
                self.messages_per_minute_per_user as usize,
            ),
            (
                "analytics_batches_per_minute_per_user",
                self.analytics_batches_per_minute_per_user as usize,
            ),
            (
                "analytics_retention_days",
                self.analytics_retention_days as usize,
            ),
            (
                "shares_per_hour_per_user",
                self.shares_per_hour_per_user as usize,
            ),
            (
                "shared_reads_per_minute_per_ip",
                self.shared_reads_per_minute_per_ip as usize,
            ),
            (
                "frames_per_second_per_socket",
                self.frames_per_second_per_socket as usize,
            ),
            ("rate_limit_strikes", self.rate_limit_strikes as usize),
            ("max_reply_chars", self.max_reply_chars),
            ("socket_read_buffer_bytes", self.socket_read_buffer_bytes),
            (
                "socket_max_write_buffer_bytes",
                self.socket_max_write_buffer_bytes,
            ),
            ("local.workers", self.local.workers),
            ("local.threads_per_worker", self.local.threads_per_worker),
            ("local.context_tokens", self.local.context_tokens as usize),
            (
                "audio.vad_silence_duration_ms",
                self.audio.vad_silence_duration_ms as usize,
            ),
            (
                "audio.vad_min_speech_ms",
                self.audio.vad_min_speech_ms as usize,
            ),
            (
                "audio.max_utterance_ms",
                self.audio.max_utterance_ms as usize,
            ),
        ];
        for (name, value) in positive.into_iter().chain(self.auth.positive()) {
            if value == 0 {
                bail!("invalid configuration: {name} must be greater than 0");
            }
        }
        if self.heartbeat_timeout_secs <= self.heartbeat_interval_secs {
            bail!("invalid configuration: heartbeat_timeout_secs must be greater than heartbeat_interval_secs");
        }
        // The final message carries the whole reply: it must fit in a frame
        // this server would itself accept (4 bytes per char at worst).
        if self.max_reply_chars.saturating_mul(4).saturating_add(4096) > self.max_frame_bytes {
            bail!(
                "invalid configuration: max_reply_chars * 4 + 4096 must not exceed max_frame_bytes"
            );
        }
        if crate::store::Backend::of_url(&self.database_url()).is_none() {
            bail!("invalid configuration: DATABASE_URL must start with sqlite:, postgres: or postgresql:");
        }
        if self.database_max_connections == 0 {
            bail!("invalid configuration: database_max_connections must be at least 1");
        }
        if !matches!(self.sqlite_synchronous.as_str(), "full" | "normal") {
            bail!("invalid configuration: sqlite_synchronous must be `full` or `normal`");
        }
        if let Some(secret) = &self.jwt_secret {
            if secret.len() < 32 {
                bail!("invalid configuration: COLLOQUY_JWT_SECRET must be at least 32 characters");
            }
        }
        if !(0.0..=1.0).contains(&self.audio.vad_threshold) {
            bail!("invalid configuration: audio.vad_threshold must be between 0 and 1");
        }
        if !(self.audio.input_burst_secs > 0.0 && self.audio.max_input_speed >= 1.0) {
            bail!("invalid configuration: audio.input_burst_secs must be above 0 and audio.max_input_speed at least 1");
        }
        if self.audio.max_utterance_ms > 30_000 {
            bail!("invalid configuration: audio.max_utterance_ms must be at most 30000 (Whisper's window)");
        }
        if let Some(voice) = &self.voice {
            if !matches!(voice.as_str(), "local" | "gemini-live" | "none") {
                bail!("invalid configuration: COLLOQUY_VOICE must be `local`, `gemini-live` or `none`, not `{voice}`");
            }
        }
        if let Some(model) = &self.model {
            model
                .parse::<colloquy_ai::ModelSpec>()
                .map_err(|e| anyhow::anyhow!("invalid configuration: {e}"))?;
        }
        models::validate(&self.models)?;
        self.auth.external.validate()?;
        self.billing.validate()?;
        self.cluster.validate()?;
        self.tools.validate(self.max_frame_bytes)?;
        self.summaries.validate()?;
        plans::validate(&self.plans, &self.default_plan, &self.anonymous_plan)?;
        let plans = self.effective_plans();
        if let Some(plan) = self
            .billing
            .prices
            .keys()
            .find(|plan| !plans.contains_key(*plan))
        {
            bail!(
                "invalid configuration: billing.prices.{plan} names no plan (add [plans.{plan}])"
            );
        }
        Ok(())
    }

    /// The database URL in effect.
    pub fn database_url(&self) -> String {
        self.database_url
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}", self.data_dir.join("colloquy.db").display()))
    }

    /// Every plan in effect: the built-in ones overlaid with `[plans]`.
    pub fn effective_plans(&self) -> std::collections::BTreeMap<String, PlanConfig> {
        plans::effective_plans(&self.plans)
    }

    /// Directory of the voice models.
    pub fn voice_models_dir(&self) -> PathBuf {
        self.audio
            .models_dir
            .clone()
            .unwrap_or_else(|| self.data_dir.join("models"))
    }

    /// Settings for the model selector; the OpenAI key is read from the environment here.
    pub fn ai_config(&self) -> colloquy_ai::AiConfig {
        colloquy_ai::AiConfig {
            model: self.model.clone(),
            openai_api_key: std::env::var("OPENAI_API_KEY")
                .ok()
                .filter(|k| !k.is_empty()),
            openai_base_url: self.openai_base_url.clone(),
            connect_timeout: Duration::from_secs(self.provider_connect_timeout_secs),
            idle_timeout: Duration::from_secs(self.provider_idle_timeout_secs),
            local: colloquy_ai::LocalConfig {
                model_path: self.local.model_path.clone().unwrap_or_else(|| {
                    self.data_dir
                        .join("models")
                        .join("SmolLM2-135M-Instruct.Q4_1.gguf")
                }),
                workers: self.local.workers,
                threads_per_worker: self.local.threads_per_worker,
                queue_capacity: self.local.queue_capacity,
                context_tokens: self.local.context_tokens,
                max_tokens: self.max_reply_tokens,
                temperature: self.local.temperature,
                top_p: self.local.top_p,
                repeat_penalty: self.local.repeat_penalty,
                fast_prefill: self.local.fast_prefill,
                sticky_wait_ms: self.local.sticky_wait_ms,
                tools: self.local.tools,
            },
        }
    }
}

/// Reject unknown keys in the file, so a typo is an error rather than a silently ignored setting.
fn check_file_keys(text: &str) -> anyhow::Result<()> {
    let table: toml::Table = toml::from_str(text)?;
    let known = serde_json::to_value(Config::default())?;
    for (key, value) in &table {
        let Some(default) = known.get(key) else {
            bail!("unknown setting `{key}`");
        };
        // Plan names are the operator's own; each plan's keys are checked
        // when it is read (`deny_unknown_fields`).
        if key == "plans" {
            continue;
        }
        if let (Some(section), Some(defaults)) = (value.as_table(), default.as_object()) {
            if let Some(unknown) = section.keys().find(|k| !defaults.contains_key(*k)) {
                bail!("unknown setting `{key}.{unknown}`");
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
