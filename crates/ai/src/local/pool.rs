//! The worker pool: `workers` OS threads, each owning one llama.cpp context
//! and generating one reply at a time, behind one bounded queue.
//!
//! Inference is CPU-bound and a context is tied to the thread that drives it,
//! so workers are plain threads rather than async tasks. Callers never block:
//! a full queue is an immediate [`ProviderError::Overloaded`]. Closing the
//! queue (dropping the [`Pool`]) stops every worker after the replies
//! already queued.
//!
//! The queue is sticky. A context keeps the cache of the prompt and reply
//! it last processed, so a conversation's next turn is quickest on the
//! worker that served the last one: only its new tokens are read. A job
//! goes to the worker whose last prompt shares the most leading messages
//! with its own; when that worker is busy, the job waits for it at most
//! `sticky_wait`, then any worker takes it. A job no worker holds a prefix
//! of goes to the idle worker used least recently, so the caches of the
//! conversations served last are the ones kept.

use std::{
    collections::VecDeque,
    hash::{Hash, Hasher},
    num::NonZeroU32,
    panic::{catch_unwind, AssertUnwindSafe},
    sync::{mpsc as std_mpsc, Arc, Condvar, Mutex, MutexGuard, PoisonError},
    thread,
    time::{Duration, Instant},
};

use llama_cpp_2::context::{params::LlamaContextParams, LlamaContext};

use super::{
    generate::{self, Cached, Job, Outcome, Sampling, PREFILL_CHUNK},
    model::{backend, native_setup_lock, LocalError, LocalModel},
};
use crate::provider::{ChatMessage, ProviderError};

/// Shape of the pool, from [`crate::LocalConfig`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct PoolShape {
    pub(crate) workers: usize,
    pub(crate) threads_per_worker: usize,
    pub(crate) queue_capacity: usize,
    pub(crate) context_tokens: u32,
    /// Longest a job waits for the busy worker holding its prefix.
    pub(crate) sticky_wait: Duration,
}

/// The queue and what each worker holds, behind one lock.
struct Shared {
    state: Mutex<State>,
    /// Signalled when a job is queued, a worker frees up, or the pool closes.
    changed: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

struct State {
    queue: VecDeque<Queued>,
    workers: Vec<WorkerView>,
    capacity: usize,
    closed: bool,
}

/// A job waiting for a worker.
struct Queued {
    job: Job,
    /// A fingerprint of each of its messages, to match a worker's.
    messages: Vec<u64>,
    /// The worker it waits for, if one holds its prefix.
    prefers: Option<usize>,
    /// When any worker may take it.
    open_at: Instant,
}

/// What the queue knows of a worker.
#[derive(Default)]
struct WorkerView {
    busy: bool,
    /// The fingerprints of the messages of the last prompt it took.
    messages: Vec<u64>,
    /// When it last took a job (`None`: never, the least recently used).
    last_used: Option<Instant>,
}

impl State {
    /// The worker for a job of `messages`: the one holding the longest run
    /// of its leading messages (an idle one among equals, then the least
    /// recently used), if one holds a run worth keeping: the whole of what
    /// the worker last read (the job continues it), or more than its first
    /// message (a system instruction many conversations share is no reason
    /// to displace another conversation).
    fn holder_of(&self, messages: &[u64]) -> Option<usize> {
        self.workers
            .iter()
            .enumerate()
            .filter_map(|(index, view)| {
                let shared = view
                    .messages
                    .iter()
                    .zip(messages)
                    .take_while(|(held, wanted)| held == wanted)
                    .count();
                let worth = shared > 0 && (shared >= 2 || shared == view.messages.len());
                worth.then_some((shared, !view.busy, std::cmp::Reverse(view.last_used), index))
            })
            .max()
            .map(|(_, _, _, index)| index)
    }

    /// Whether `worker`, idle, is the idle worker used least recently.
    fn least_recently_used(&self, worker: usize) -> bool {
        let mine = self.workers[worker].last_used;
        self.workers
            .iter()
            .enumerate()
            .all(|(other, view)| other == worker || view.busy || view.last_used >= mine)
    }

    /// The oldest job `worker` (idle) may take now; else when to look again
    /// (`None`: when something changes).
    fn take(&mut self, worker: usize, now: Instant) -> Result<Queued, Option<Instant>> {
        let mut retry_at: Option<Instant> = None;
        let mut found = None;
        for (at, queued) in self.queue.iter().enumerate() {
            let mine = match queued.prefers {
                Some(preferred) if preferred == worker => true,
                Some(preferred) if !self.workers[preferred].busy => false,
                Some(_) if now >= queued.open_at => true,
                Some(_) => {
                    retry_at = Some(retry_at.map_or(queued.open_at, |t| t.min(queued.open_at)));
                    false
                }
                None => self.least_recently_used(worker),
            };
            if mine {
                found = Some(at);
                break;
            }
        }
        let Some(queued) = found.and_then(|at| self.queue.remove(at)) else {
            return Err(retry_at);
        };
        let view = &mut self.workers[worker];
        view.busy = true;
        view.messages.clone_from(&queued.messages);
        view.last_used = Some(now);
        Ok(queued)
    }
}

/// A fingerprint of each message, to tell which worker holds a prompt's start.
fn fingerprints(messages: &[ChatMessage]) -> Vec<u64> {
    messages
        .iter()
        .map(|message| {
            // Fixed keys: the same message gives the same fingerprint in every job.
            let mut hasher = std::hash::DefaultHasher::new();
            (message.role as u8).hash(&mut hasher);
            message.content.hash(&mut hasher);
            for call in &message.tool_calls {
                (&call.id, &call.name, &call.arguments).hash(&mut hasher);
            }
            message.tool_call_id.hash(&mut hasher);
            hasher.finish()
        })
        .collect()
}

/// The queue's owning side; the workers share the rest.
pub(crate) struct Pool {
    shared: Arc<Shared>,
    sticky_wait: Duration,
}

impl Pool {
    /// Start the workers and wait until each has its context, so a context
    /// that cannot be created fails the start rather than the first reply.
    pub(crate) fn start(
        model: Arc<LocalModel>,
        shape: PoolShape,
        sampling: Sampling,
    ) -> Result<Self, LocalError> {
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                queue: VecDeque::with_capacity(shape.queue_capacity),
                workers: (0..shape.workers).map(|_| WorkerView::default()).collect(),
                capacity: shape.queue_capacity,
                closed: false,
            }),
            changed: Condvar::new(),
        });
        // Built first: dropped on an early return, it stops the workers already up.
        let pool = Self {
            shared: Arc::clone(&shared),
            sticky_wait: shape.sticky_wait,
        };
        let (ready_tx, ready_rx) = std_mpsc::channel::<Result<(), LocalError>>();
        for index in 0..shape.workers {
            let worker = Worker {
                index,
                model: Arc::clone(&model),
                shared: Arc::clone(&shared),
                shape,
                sampling,
            };
            let ready = ready_tx.clone();
            thread::Builder::new()
                .name(format!("colloquy-llm-{index}"))
                .spawn(move || worker.run(ready))
                .map_err(|e| LocalError::Engine(format!("could not start a worker thread: {e}")))?;
        }
        drop(ready_tx);
        for _ in 0..shape.workers {
            match ready_rx.recv() {
                Ok(Ok(())) => {}
                Ok(Err(error)) => return Err(error),
                Err(_) => return Err(LocalError::Engine("a worker thread died at start".into())),
            }
        }
        Ok(pool)
    }

    /// Queue `job` for the worker that suits it, or refuse at once when full.
    pub(crate) fn submit(&self, job: Job) -> Result<(), ProviderError> {
        self.enqueue(job, None, 0)
    }

    /// Queue optional work (a prefill) for `worker` only while it leaves
    /// room for at least one reply, so it never turns a reply away; `false`
    /// if dropped.
    pub(crate) fn offer(&self, job: Job, worker: usize) -> bool {
        self.enqueue(job, Some(worker), 1).is_ok()
    }

    fn enqueue(&self, job: Job, worker: Option<usize>, spare: usize) -> Result<(), ProviderError> {
        let messages = fingerprints(&job.request.messages);
        let now = Instant::now();
        // Open: only dropping the pool closes the queue.
        let mut state = self.shared.lock();
        // Jobs an idle worker is about to take are not waiting.
        let idle = state.workers.iter().filter(|view| !view.busy).count();
        if state.queue.len() + spare >= state.capacity + idle {
            return Err(ProviderError::Overloaded);
        }
        let prefers = worker.or_else(|| state.holder_of(&messages));
        state.queue.push_back(Queued {
            job,
            messages,
            prefers,
            open_at: now + self.sticky_wait,
        });
        drop(state);
        self.shared.changed.notify_all();
        Ok(())
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.shared.lock().closed = true;
        self.shared.changed.notify_all();
    }
}

/// One worker thread's state.
struct Worker {
    index: usize,
    model: Arc<LocalModel>,
    shared: Arc<Shared>,
    shape: PoolShape,
    sampling: Sampling,
}

impl Worker {
    fn run(self, ready: std_mpsc::Sender<Result<(), LocalError>>) {
        let mut ctx = match self.new_context() {
            Ok(ctx) => ctx,
            Err(error) => {
                let _ = ready.send(Err(error));
                return;
            }
        };
        let _ = ready.send(Ok(()));
        drop(ready);
        tracing::debug!(worker = self.index, "local model worker ready");
        let mut cached = Cached::default();
        while let Some(job) = self.next_job() {
            self.serve(&mut ctx, &mut cached, &job);
            self.shared.lock().workers[self.index].busy = false;
            self.shared.changed.notify_all();
        }
        tracing::debug!(worker = self.index, "local model worker stopped");
    }

    fn new_context(&self) -> Result<LlamaContext<'_>, LocalError> {
        let threads = i32::try_from(self.shape.threads_per_worker).unwrap_or(i32::MAX);
        let params = LlamaContextParams::default()
            .with_n_ctx(NonZeroU32::new(self.shape.context_tokens))
            .with_n_batch(PREFILL_CHUNK as u32)
            .with_n_ubatch(PREFILL_CHUNK as u32)
            .with_n_threads(threads)
            .with_n_threads_batch(threads);
        let backend = backend()?;
        let _guard = native_setup_lock();
        self.model
            .model
            .new_context(backend, params)
            .map_err(|e| LocalError::Engine(format!("could not create a context: {e}")))
    }

    /// The next job this worker should take ([`State::take`]); `None` once
    /// the pool is dropped and its queue is empty.
    fn next_job(&self) -> Option<Job> {
        let mut state = self.shared.lock();
        loop {
            match state.take(self.index, Instant::now()) {
                Ok(queued) => return Some(queued.job),
                Err(_) if state.closed && state.queue.is_empty() => return None,
                Err(None) => {
                    state = self
                        .shared
                        .changed
                        .wait(state)
                        .unwrap_or_else(PoisonError::into_inner);
                }
                Err(Some(retry_at)) => {
                    let wait = retry_at.saturating_duration_since(Instant::now());
                    state = self
                        .shared
                        .changed
                        .wait_timeout(state, wait)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0;
                }
            }
        }
    }

    fn serve(&self, ctx: &mut LlamaContext<'_>, cached: &mut Cached, job: &Job) {
        let waited = job.enqueued_at.elapsed();
        let started = std::time::Instant::now();
        // A panic inside llama-cpp-2 must cost one reply, not the worker.
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            generate::run(&self.model, ctx, cached, self.sampling, job)
        }));
        let outcome = outcome.unwrap_or_else(|_| {
            // Whatever the panic left in the cache is unknown: start clean.
            cached.reset(ctx);
            let _ = job.events.blocking_send(Err(ProviderError::Model(
                "the local model failed while generating".into(),
            )));
            Outcome::Failed
        });
        let (queued_ms, took_ms) = (
            waited.as_millis() as u64,
            started.elapsed().as_millis() as u64,
        );
        match outcome {
            Outcome::Finished { prompt, generated } => tracing::debug!(
                worker = self.index,
                queued_ms,
                took_ms,
                prompt_tokens = prompt,
                completion_tokens = generated,
                "local reply finished"
            ),
            Outcome::Prefilled { prompt, reused } => tracing::debug!(
                worker = self.index,
                queued_ms,
                took_ms,
                prompt_tokens = prompt,
                reused_tokens = reused,
                "local prompt prefilled"
            ),
            other => {
                tracing::debug!(worker = self.index, queued_ms, took_ms, outcome = ?other, "local reply ended early")
            }
        }
    }
}
