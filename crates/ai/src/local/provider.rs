//! [`LocalProvider`]: the model loaded once, a pool of worker threads each
//! with its own llama.cpp context, and the reply stream that cancels its
//! generation when dropped.

use std::{
    pin::Pin,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    task::{Context, Poll},
    time::{Duration, Instant},
};

use async_trait::async_trait;
use futures::Stream;
use tokio::sync::mpsc;

use super::{
    generate::{Job, Sampling},
    model::{LocalError, LocalModel},
    pool::{Pool, PoolShape},
    requantize, LocalConfig,
};
use crate::provider::{
    ChatMessage, ChatRequest, ModelInfo, Provider, ProviderError, ReplyStream, StreamEvent,
};

/// Deltas buffered between a worker and its consumer. Small: a slow consumer
/// should slow its own generation, not let it run far ahead.
const EVENT_BUFFER: usize = 32;

/// The longest a turn may be held for the worker with its history: past
/// that, reading the history afresh is always quicker.
const MAX_STICKY_WAIT_MS: u64 = 10_000;

/// The smallest context window that leaves room for a prompt and a reply.
const MIN_CONTEXT_TOKENS: u32 = 128;

/// The embedded llama.cpp provider. Share it behind an `Arc`; dropping it
/// closes the queue, and each worker stops once the replies already queued
/// are done (or cancelled by their dropped streams).
pub struct LocalProvider {
    pool: Pool,
    info: ModelInfo,
    workers: usize,
}

impl std::fmt::Debug for LocalProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalProvider")
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

impl LocalProvider {
    /// Load the model at `config.model_path` and start `config.workers`
    /// worker threads. Blocks for the load (about a tenth of a second for
    /// SmolLM2-135M); a missing or corrupt file is a [`LocalError`] naming
    /// the path and [`SETUP_COMMAND`](super::SETUP_COMMAND).
    pub fn load(config: &LocalConfig) -> Result<Self, LocalError> {
        validate(config)?;
        let started = Instant::now();
        let path = if config.fast_prefill {
            requantize::prefill_friendly(&config.model_path)
        } else {
            config.model_path.clone()
        };
        let model = Arc::new(LocalModel::load(&path)?);
        let n_ctx_train = model.model.n_ctx_train();
        let context_tokens = match n_ctx_train {
            0 => config.context_tokens,
            trained => config.context_tokens.min(trained),
        };
        if context_tokens < config.context_tokens {
            tracing::warn!(
                configured = config.context_tokens,
                used = context_tokens,
                "the context window is capped at the model's training length"
            );
        }
        let shape = PoolShape {
            workers: config.workers,
            threads_per_worker: config.threads_per_worker,
            queue_capacity: config.queue_capacity,
            context_tokens,
            sticky_wait: Duration::from_millis(config.sticky_wait_ms),
        };
        let sampling = Sampling {
            max_tokens: config.max_tokens,
            temperature: config.temperature,
            top_p: config.top_p,
            repeat_penalty: config.repeat_penalty,
            tools: config.tools,
        };
        let info = ModelInfo {
            provider: "local".into(),
            model: model.name.clone(),
        };
        let pool = Pool::start(model, shape, sampling)?;
        tracing::info!(
            model = %info.model,
            workers = shape.workers,
            threads_per_worker = shape.threads_per_worker,
            context_tokens,
            load_ms = started.elapsed().as_millis() as u64,
            "local model loaded"
        );
        Ok(Self {
            pool,
            info,
            workers: shape.workers,
        })
    }
}

fn validate(config: &LocalConfig) -> Result<(), LocalError> {
    let bad = |what: String| Err(LocalError::Config(what));
    if config.workers == 0 {
        return bad("workers must be at least 1".into());
    }
    if config.threads_per_worker == 0 {
        return bad("threads_per_worker must be at least 1".into());
    }
    if config.context_tokens < MIN_CONTEXT_TOKENS {
        return bad(format!(
            "context_tokens must be at least {MIN_CONTEXT_TOKENS}"
        ));
    }
    if config.sticky_wait_ms > MAX_STICKY_WAIT_MS {
        return bad(format!(
            "sticky_wait_ms must be at most {MAX_STICKY_WAIT_MS}"
        ));
    }
    if config.max_tokens == 0 {
        return bad("max_tokens must be at least 1".into());
    }
    let probability = 0.0..=1.0;
    if !config.temperature.is_finite() || config.temperature < 0.0 {
        return bad("temperature must be 0 or more".into());
    }
    if !probability.contains(&config.top_p) {
        return bad("top_p must be between 0 and 1".into());
    }
    if !config.repeat_penalty.is_finite() || config.repeat_penalty <= 0.0 {
        return bad("repeat_penalty must be above 0 (1 disables it)".into());
    }
    Ok(())
}

#[async_trait]
impl Provider for LocalProvider {
    fn info(&self) -> ModelInfo {
        self.info.clone()
    }

    /// One prefill job per worker: each worker has its own cache and any of
    /// them may take the reply. A worker that already holds the prompt
    /// decodes one token. Prefills never fill the queue's last slot, so
    /// they cannot turn a reply away.
    fn prepare(&self, messages: Vec<ChatMessage>) {
        if messages.is_empty() {
            return;
        }
        for worker in 0..self.workers {
            let (events, _) = mpsc::channel(1);
            let job = Job {
                request: ChatRequest {
                    messages: messages.clone(),
                    ..ChatRequest::default()
                },
                events,
                cancel: Arc::new(AtomicBool::new(false)),
                enqueued_at: Instant::now(),
                prefill_only: true,
            };
            if !self.pool.offer(job, worker) {
                return;
            }
        }
    }

    async fn stream_chat(&self, request: ChatRequest) -> Result<ReplyStream, ProviderError> {
        if request.messages.is_empty() {
            return Err(ProviderError::Model("the conversation is empty".into()));
        }
        let (events, receiver) = mpsc::channel(EVENT_BUFFER);
        let cancel = Arc::new(AtomicBool::new(false));
        self.pool.submit(Job {
            request,
            events,
            cancel: Arc::clone(&cancel),
            enqueued_at: Instant::now(),
            prefill_only: false,
        })?;
        Ok(Box::pin(LocalReplyStream {
            receiver,
            cancel,
            done: false,
        }))
    }
}

/// A reply being generated by a worker. Dropping it raises the cancel flag
/// (and closes the channel), which the worker sees before its next decode.
struct LocalReplyStream {
    receiver: mpsc::Receiver<Result<StreamEvent, ProviderError>>,
    cancel: Arc<AtomicBool>,
    done: bool,
}

impl Stream for LocalReplyStream {
    type Item = Result<StreamEvent, ProviderError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.done {
            return Poll::Ready(None);
        }
        match self.receiver.poll_recv(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Some(item)) => {
                if matches!(item, Ok(StreamEvent::Finished(_)) | Err(_)) {
                    self.done = true;
                }
                Poll::Ready(Some(item))
            }
            // The worker let go without finishing (it cannot, short of a
            // bug): report it instead of ending as if the reply were whole.
            Poll::Ready(None) => {
                self.done = true;
                Poll::Ready(Some(Err(ProviderError::Model(
                    "the local model stopped before finishing the reply".into(),
                ))))
            }
        }
    }
}

impl Drop for LocalReplyStream {
    fn drop(&mut self) {
        self.cancel.store(true, Ordering::Relaxed);
    }
}
