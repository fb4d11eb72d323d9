//! One reply from start to finish, whatever the transport.
//!
//! [`TurnService::submit`] stores the user message (durably, before anything
//! is acknowledged; the first one stores its conversation too) and
//! publishes its `ack`; a background task then waits for
//! the conversation's previous reply, streams the provider's deltas as
//! `delta` events and ends with one final `message` event whose row is stored
//! in the same step: `complete`, `interrupted` (stop, shutdown) or `error`
//! (preceded by an `error` event). Every reply ends with that final message,
//! so clients and the HTTP adapters have one thing to wait for.

mod abandoned;
mod checkpoint;
mod clock;
mod cluster;
mod completed;
mod events;
mod first;
mod history;
mod live_tools;
pub mod metrics;
mod oneshot;
mod publish;
mod recovery;
mod regenerate;
mod replies;
mod reply;
mod rolling;
mod spoken;
mod summary;
mod text;
mod title;
mod tools;

use std::{
    num::NonZeroU32,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::Duration,
};

use colloquy_ai::{ChatMessage, Provider, ProviderError, Role};
use colloquy_protocol::{Sender, ServerEvent};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use tokio::sync::Semaphore;
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use tracing::Instrument;
use uuid::Uuid;

pub use abandoned::sweep_abandoned;
pub use cluster::submit_handler;
pub use events::{final_event, stored_events, tool_call_json};
pub use live_tools::LiveToolCall;
pub use recovery::close_orphaned_replies;
pub use spoken::{ExchangeUsage, SpokenExchange};
pub use summary::{SummaryError, SummaryLimits};

use self::{
    cluster::Holding,
    events::ack_event,
    publish::{publish_user_message, Storage, UserMessage},
    replies::Replies,
    reply::ReplyJob,
};
use crate::{
    billing::{Billing, QuotaError, QuotaExceeded},
    cluster::{forward::ForwardedSubmit, Cluster},
    hub::ChannelHandle,
    input::{ClientId, UserText},
    limits::Limits,
    models::{ModelChoice, Models},
    store::{self, MessageWriter, Parent, Pool, StoreError},
    streak::Streaks,
    tools::{ToolRegistry, ToolSettings},
};

/// Settings that shape every reply.
#[derive(Debug, Clone)]
pub struct TurnSettings {
    pub system_prompt: String,
    pub history_budget_tokens: usize,
    pub max_reply_tokens: u32,
    /// Generation stops once the reply reaches this many characters.
    pub max_reply_chars: usize,
    /// A streaming reply's text is saved at most this long after it grows.
    pub checkpoint_interval: Duration,
    /// Prefills ([`TurnService::prepare`]) allowed per minute, server-wide.
    pub prefills_per_minute: u32,
    /// Replies one conversation may have pending or running at once.
    pub max_pending_replies: usize,
    /// Replies generated at once across the server.
    pub max_concurrent_generations: usize,
    /// Title a new conversation with the model after its first reply.
    pub auto_titles: bool,
    /// Rounds of tool calls one reply may run before the model must answer.
    pub max_tool_rounds: u32,
    /// How long conversation summaries may be.
    pub summary_limits: SummaryLimits,
    /// Replace turns trimmed from a prompt with the rolling summary.
    pub rolling_summaries: bool,
}

/// Why a message was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    #[error("the server is shutting down")]
    ShuttingDown,
    #[error("the conversation no longer exists")]
    ConversationGone,
    #[error("too many replies are waiting in this conversation; wait for them to finish")]
    Busy,
    #[error("too many messages; slow down")]
    RateLimited,
    #[error("the cluster cannot be reached; please retry")]
    ClusterUnavailable,
    /// A `parent_id` or `regenerate` target that is not in the conversation.
    #[error("{0}")]
    InvalidBranch(&'static str),
    #[error("you have reached your plan's daily limit; it resets at midnight UTC")]
    QuotaExceeded(Box<QuotaExceeded>),
    #[error("the model `{model}` is not included in your plan `{plan}`")]
    ModelNotInPlan { plan: String, model: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<QuotaError> for SubmitError {
    fn from(error: QuotaError) -> Self {
        match error {
            QuotaError::Exceeded(details) => SubmitError::QuotaExceeded(details),
            QuotaError::ModelNotInPlan { plan, model } => {
                SubmitError::ModelNotInPlan { plan, model }
            }
            QuotaError::Store(error) => SubmitError::Store(error),
        }
    }
}

impl SubmitError {
    /// Stable code for the client's `error` event.
    pub fn code(&self) -> &'static str {
        match self {
            SubmitError::ShuttingDown => "shutting_down",
            SubmitError::ConversationGone => "not_found",
            SubmitError::Busy => "busy",
            SubmitError::RateLimited => "rate_limited",
            SubmitError::ClusterUnavailable => "unavailable",
            SubmitError::InvalidBranch(_) => "invalid_branch",
            SubmitError::QuotaExceeded(_) => "quota_exceeded",
            SubmitError::ModelNotInPlan { .. } => "model_not_in_plan",
            SubmitError::Store(_) => "storage_error",
        }
    }
}

/// Per-turn choices that differ from the server's defaults.
#[derive(Debug, Clone, Default)]
pub struct TurnOptions {
    /// Replaces the configured system prompt (the voice coach's session context).
    pub system_prompt: Option<String>,
    /// The model the user picked for this message; the default when unset.
    pub model: Option<ModelChoice>,
    /// Cluster mode: another node handed this message over; it is not handed on.
    pub forwarded: bool,
    /// The message it follows: by default the active leaf; an edit names
    /// the edited message's parent, so the two are alternatives.
    pub parent: Parent,
    /// Milliseconds of speech the message was transcribed from (0: typed).
    pub voice_ms_in: u64,
}

/// An accepted user message.
#[derive(Debug, Clone)]
pub struct Submitted {
    /// The `ack` event (the original one when `duplicate`).
    pub ack: ServerEvent,
    pub message_id: Uuid,
    pub reply_id: Uuid,
    /// The `client_id` was seen before: nothing new was stored or started.
    pub duplicate: bool,
}

/// Runs every reply; one per server.
pub struct TurnService {
    db: Pool,
    writer: MessageWriter,
    /// The models a message may pick; the first answers when it picks none.
    models: Models,
    settings: TurnSettings,
    tasks: TaskTracker,
    /// Fired when the shutdown grace period ends: running replies stop and are stored as interrupted.
    stop_replies: CancellationToken,
    stopping: AtomicBool,
    prefills: DefaultDirectRateLimiter,
    /// One permit per reply being generated.
    generations: Arc<Semaphore>,
    /// Per-user message budgets, paid by every transport's turns.
    limits: Arc<Limits>,
    /// Replies pending or running, by conversation.
    replies: Arc<Replies>,
    /// Every stored user message counts its day.
    streaks: Streaks,
    /// Every turn's latency, for `/metrics`.
    metrics: Arc<metrics::TurnMetrics>,
    /// Cluster mode: conversation leases and forwarding.
    cluster: Option<Arc<Cluster>>,
    /// The tools replies may call.
    tools: Arc<ToolRegistry>,
    /// Plans and quotas every turn is checked against, and its usage meter.
    billing: Billing,
}

/// A store error of a turn's write: a conversation that no longer exists
/// is gone for the client.
fn gone(error: StoreError) -> SubmitError {
    match error {
        StoreError::NotFound => SubmitError::ConversationGone,
        other => SubmitError::Store(other),
    }
}

/// The user-facing text of an error code carried by a failed reply.
pub fn error_text(code: &str) -> &'static str {
    match code {
        "no_model" => "No AI model is configured on this server.",
        "storage_error" => "The reply could not be saved. Please try again.",
        "not_found" => "This conversation was deleted.",
        "tool_rounds_exceeded" => "The model kept calling tools past this server's limit.",
        provider_code => ProviderError::public_message_for(provider_code),
    }
}

impl TurnService {
    /// A service generating with `models` (none: replies fail with `no_model`).
    pub fn new(
        db: Pool,
        models: Models,
        settings: TurnSettings,
        limits: Arc<Limits>,
        streaks: Streaks,
        cluster: Option<Arc<Cluster>>,
        billing: Billing,
    ) -> Self {
        let generations = Arc::new(Semaphore::new(settings.max_concurrent_generations));
        let prefills = RateLimiter::direct(Quota::per_minute(
            NonZeroU32::new(settings.prefills_per_minute).unwrap_or(NonZeroU32::MIN),
        ));
        Self {
            writer: MessageWriter::spawn(db.clone()),
            db,
            models,
            settings,
            tasks: TaskTracker::new(),
            stop_replies: CancellationToken::new(),
            stopping: AtomicBool::new(false),
            prefills,
            generations,
            limits,
            streaks,
            metrics: Arc::default(),
            replies: Arc::default(),
            cluster,
            billing,
            tools: Arc::new(ToolRegistry::new(ToolSettings {
                call_timeout: Duration::from_secs(10),
                max_result_bytes: 16 * 1024,
            })),
        }
    }

    /// The service with `tools` offered to the model (none by default).
    pub fn with_tools(mut self, tools: Arc<ToolRegistry>) -> Self {
        self.tools = tools;
        self
    }

    /// The tools replies may call; an embedding program may register more.
    pub fn tools(&self) -> &Arc<ToolRegistry> {
        &self.tools
    }

    fn storage(&self) -> Storage<'_> {
        Storage {
            writer: &self.writer,
            db: &self.db,
        }
    }

    /// The default model's provider, if any.
    pub fn provider(&self) -> Option<&Arc<dyn Provider>> {
        self.models.default_provider()
    }

    /// Every model a message may pick.
    pub fn models(&self) -> &Models {
        &self.models
    }

    /// A permit to generate outside a turn (the OpenAI-compatible endpoint),
    /// from the same server-wide budget as replies; `None` when it is spent.
    pub fn try_generation(&self) -> Option<tokio::sync::OwnedSemaphorePermit> {
        self.generations.clone().try_acquire_owned().ok()
    }

    /// Every turn's latency, for `/metrics`.
    pub fn metrics(&self) -> &metrics::TurnMetrics {
        &self.metrics
    }

    /// Plans, quotas and the usage meter.
    pub fn billing(&self) -> &Billing {
        &self.billing
    }

    /// The id of the default model (`none` without one), as usage labels it.
    pub fn default_model_id(&self) -> String {
        self.model_id(None)
    }

    /// The id of the model a turn with `choice` is answered by (the
    /// default model's when it picks none).
    fn model_id(&self, choice: Option<&ModelChoice>) -> String {
        choice
            .or_else(|| self.models.choices().first())
            .map_or_else(|| "none".to_owned(), |choice| choice.id.clone())
    }

    /// The settings every reply is shaped by.
    pub fn settings(&self) -> &TurnSettings {
        &self.settings
    }

    /// Lets the provider process the system instruction of the turns to come
    /// (`None`: the default one) before the first of them, so its reply
    /// starts sooner. Best effort.
    pub fn prepare(&self, system_prompt: Option<&str>) {
        if let Some(provider) = self.provider() {
            // Sockets opened and closed in a loop must not fill the model's
            // queue with prefills that turn real replies away.
            if self.prefills.check().is_err() {
                tracing::debug!("prefill skipped: prefills_per_minute reached");
                return;
            }
            let system = system_prompt.unwrap_or(&self.settings.system_prompt);
            provider.prepare(vec![ChatMessage::new(Role::System, system)]);
        }
    }

    /// Store a user message, publish its `ack` and start the reply.
    pub async fn submit(
        &self,
        channel: &ChannelHandle,
        text: UserText,
        client_id: Option<ClientId>,
    ) -> Result<Submitted, SubmitError> {
        self.submit_with(channel, text, client_id, TurnOptions::default())
            .await
    }

    /// [`TurnService::submit`] with per-turn options.
    #[tracing::instrument(skip_all, fields(conversation_id = %channel.id))]
    pub async fn submit_with(
        &self,
        channel: &ChannelHandle,
        text: UserText,
        client_id: Option<ClientId>,
        options: TurnOptions,
    ) -> Result<Submitted, SubmitError> {
        let clock = clock::TurnClock::start();
        if self.stopping.load(Ordering::Acquire) {
            return Err(SubmitError::ShuttingDown);
        }
        if let Some(client_id) = &client_id {
            if let Some(existing) =
                store::find_by_client_id(&self.db, channel.id, client_id.as_str()).await?
            {
                return Ok(duplicate(existing));
            }
        }
        if let Parent::Message(Some(parent)) = options.parent {
            let found = store::find_message(&self.db, channel.id, parent).await?;
            if !found.is_some_and(|message| message.sender == Sender::Assistant) {
                return Err(SubmitError::InvalidBranch(
                    "parent_id names no reply in this conversation",
                ));
            }
        }
        self.check_quota(channel, &options).await?;
        let forward = || ForwardedSubmit {
            conversation_id: channel.id,
            owner: channel.owner,
            content: text.as_str().to_owned(),
            client_id: client_id.as_ref().map(|id| id.as_str().to_owned()),
            model: options.model.as_ref().map(|model| model.id.clone()),
            system_prompt: options.system_prompt.clone(),
            parent: options.parent,
            regenerate: None,
            voice_ms_in: options.voice_ms_in,
        };
        // A resend (above) costs nothing; a new message pays here.
        let lease = match self.admit(channel, forward, options.forwarded).await? {
            Holding::Here(lease) => lease,
            Holding::Forwarded(submitted) => return Ok(submitted),
        };
        let message_id = Uuid::now_v7();
        let reply_id = Uuid::now_v7();
        let client_id_text = client_id.as_ref().map(|id| id.as_str().to_owned());
        let user_message = UserMessage {
            id: message_id,
            content: text.as_str(),
            client_id: client_id_text,
            reply_id,
            parent: options.parent,
        };
        let published = publish_user_message(self.storage(), channel, user_message).await;
        let ack = match published {
            Ok(published) => {
                clock.stored();
                published.event.clone()
            }
            // Two sends with the same client_id raced; the other one won.
            Err(StoreError::Conflict(_)) => {
                let client_id = client_id.as_ref().map(ClientId::as_str).unwrap_or_default();
                return match store::find_by_client_id(&self.db, channel.id, client_id).await? {
                    Some(existing) => Ok(duplicate(existing)),
                    None => Err(SubmitError::Store(StoreError::Conflict(
                        "duplicate client_id",
                    ))),
                };
            }
            Err(StoreError::NotFound) => return Err(SubmitError::ConversationGone),
            Err(other) => return Err(other.into()),
        };
        let start = ReplyStart {
            reply_id,
            question_id: message_id,
            question: text.as_str().to_owned(),
            clock,
            lease,
        };
        self.start_reply(channel, start, options);
        self.streaks.record_activity(channel.owner).await;
        Ok(Submitted {
            ack,
            message_id,
            reply_id,
            duplicate: false,
        })
    }

    /// Refuse a turn over its owner's plan before anything is stored or
    /// generated; a turn another node handed over was checked there (the
    /// database is shared).
    async fn check_quota(
        &self,
        channel: &ChannelHandle,
        options: &TurnOptions,
    ) -> Result<(), SubmitError> {
        if options.forwarded {
            return Ok(());
        }
        let model_id = self.model_id(options.model.as_ref());
        self.billing
            .check(channel.owner, &model_id, options.voice_ms_in > 0)
            .await?;
        Ok(())
    }

    /// Register and spawn the task that writes a reply.
    fn start_reply(&self, channel: &ChannelHandle, start: ReplyStart, options: TurnOptions) {
        let reply_id = start.reply_id;
        let model_id = self.model_id(options.model.as_ref());
        let cancel = self.stop_replies.child_token();
        self.replies.register(channel.id, reply_id, cancel.clone());
        let mut settings = self.settings.clone();
        if let Some(system_prompt) = options.system_prompt {
            settings.system_prompt = system_prompt;
        }
        let provider = match options.model {
            Some(choice) => Some(choice.provider),
            None => self.provider().cloned(),
        };
        let job = ReplyJob {
            db: self.db.clone(),
            writer: self.writer.clone(),
            provider,
            settings,
            channel: channel.clone(),
            replies: self.replies.clone(),
            generations: self.generations.clone(),
            reply_id,
            question_id: start.question_id,
            cancel,
            clock: start.clock,
            metrics: self.metrics.clone(),
            question: start.question,
            tools: self.tools.clone(),
            rolling: self.settings.rolling_summaries.then(|| rolling::Rolling {
                tasks: self.tasks.clone(),
                stop: self.stop_replies.clone(),
                limits: self.settings.summary_limits,
            }),
            billing: self.billing.clone(),
            model_id,
            voice_ms_in: i64::try_from(options.voice_ms_in).unwrap_or(i64::MAX),
            _lease: start.lease,
        };
        let span = tracing::info_span!("reply", conversation_id = %channel.id, %reply_id);
        self.tasks.spawn(job.run().instrument(span));
    }

    /// Summarize a conversation's active path with the default model,
    /// continuing its stored summary, and store it; a generation permit is
    /// needed, as for a reply (none free: `Overloaded`).
    pub async fn summarize(
        &self,
        conversation_id: Uuid,
    ) -> Result<store::StoredSummary, SummaryError> {
        let leaf = store::active_leaf(&self.db, conversation_id)
            .await?
            .ok_or(SummaryError::NothingToSummarize)?;
        let provider = self.provider().ok_or(SummaryError::NoModel)?;
        let _permit = self.try_generation().ok_or(SummaryError::Overloaded)?;
        let limits = self.settings.summary_limits;
        let end = summary::PathEnd {
            leaf,
            through: leaf,
        };
        summary::summarize(&self.db, provider.as_ref(), conversation_id, end, limits).await
    }

    /// Cancel every pending and running reply of a conversation (the
    /// client's `stop`, or the conversation deleted); returns how many.
    pub fn cancel_replies(&self, conversation_id: Uuid) -> usize {
        self.replies.cancel_all(conversation_id)
    }

    /// Stop a reply the listener spoke over and have it stored as `heard`.
    /// False when the reply already ended: the caller cuts the stored one
    /// ([`TurnService::truncate_spoken_reply`]).
    pub fn cut_reply(&self, conversation_id: Uuid, reply_id: Uuid, heard: String) -> bool {
        self.replies.cut(conversation_id, reply_id, heard)
    }

    /// Refuse new messages from now on (shutdown has begun).
    pub fn refuse_new(&self) {
        self.stopping.store(true, Ordering::Release);
    }

    /// Let in-flight replies finish for up to `grace`, then stop the rest
    /// (they are stored as interrupted) and wait for them.
    pub async fn drain(&self, grace: Duration) {
        self.refuse_new();
        self.tasks.close();
        if tokio::time::timeout(grace, self.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                in_flight = self.tasks.len(),
                "grace period over: interrupting replies"
            );
            self.stop_replies.cancel();
            self.tasks.wait().await;
        }
    }
}

/// What a reply task starts from.
struct ReplyStart {
    reply_id: Uuid,
    /// The user message answered.
    question_id: Uuid,
    question: String,
    clock: clock::TurnClock,
    lease: Option<crate::cluster::LeaseGuard>,
}

fn duplicate(existing: store::Message) -> Submitted {
    Submitted {
        ack: ack_event(&existing),
        message_id: existing.id,
        reply_id: existing.reply_id.unwrap_or(existing.id),
        duplicate: true,
    }
}
