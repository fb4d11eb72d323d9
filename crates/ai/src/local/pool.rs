//! The worker pool: `workers` OS threads, each owning one llama.cpp context
//! and generating one reply at a time, behind a bounded FIFO queue.
//!
//! Inference is CPU-bound and a context is tied to the thread that drives it,
//! so workers are plain threads rather than async tasks. Callers never block:
//! a full queue is an immediate [`ProviderError::Overloaded`]. Closing the
//! queue (dropping the [`Pool`]) stops every worker after its current reply.

use std::{
    num::NonZeroU32,
    panic::{catch_unwind, AssertUnwindSafe},
    sync::{
        atomic::{AtomicUsize, Ordering},
        mpsc::{self as std_mpsc, Receiver, SyncSender, TrySendError},
        Arc, Mutex, PoisonError,
    },
    thread,
};

use llama_cpp_2::context::{params::LlamaContextParams, LlamaContext};

use super::{
    generate::{self, Cached, Job, Outcome, Sampling, PREFILL_CHUNK},
    model::{backend, native_setup_lock, LocalError, LocalModel},
};
use crate::provider::ProviderError;

/// Shape of the pool, from [`crate::LocalConfig`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct PoolShape {
    pub(crate) workers: usize,
    pub(crate) threads_per_worker: usize,
    pub(crate) queue_capacity: usize,
    pub(crate) context_tokens: u32,
}

/// The queue's sending side; the workers hold the receiving side.
pub(crate) struct Pool {
    queue: SyncSender<Job>,
    /// Jobs submitted and not yet taken by a worker (an upper bound of
    /// those waiting: a job handed straight to an idle worker counts until
    /// the worker wakes).
    waiting: Arc<AtomicUsize>,
    capacity: usize,
}

impl Pool {
    /// Start the workers and wait until each has its context, so a context
    /// that cannot be created fails the start rather than the first reply.
    pub(crate) fn start(
        model: Arc<LocalModel>,
        shape: PoolShape,
        sampling: Sampling,
    ) -> Result<Self, LocalError> {
        // `sync_channel(n)` holds n waiting jobs; a job handed straight to an
        // idle worker does not count, so capacity means "waiting", as configured.
        let (queue, jobs) = std_mpsc::sync_channel::<Job>(shape.queue_capacity);
        let jobs = Arc::new(Mutex::new(jobs));
        let waiting = Arc::new(AtomicUsize::new(0));
        let (ready_tx, ready_rx) = std_mpsc::channel::<Result<(), LocalError>>();
        for index in 0..shape.workers {
            let worker = Worker {
                index,
                model: Arc::clone(&model),
                jobs: Arc::clone(&jobs),
                waiting: Arc::clone(&waiting),
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
                // Returning drops `queue`, which stops the workers already up.
                Ok(Err(error)) => return Err(error),
                Err(_) => return Err(LocalError::Engine("a worker thread died at start".into())),
            }
        }
        Ok(Self {
            queue,
            waiting,
            capacity: shape.queue_capacity,
        })
    }

    /// Queue `job` for the next free worker, or refuse at once when full.
    pub(crate) fn submit(&self, job: Job) -> Result<(), ProviderError> {
        self.waiting.fetch_add(1, Ordering::Relaxed);
        self.queue.try_send(job).map_err(|error| {
            self.waiting.fetch_sub(1, Ordering::Relaxed);
            match error {
                TrySendError::Full(_) => ProviderError::Overloaded,
                TrySendError::Disconnected(_) => {
                    ProviderError::Model("the local model's workers have stopped".into())
                }
            }
        })
    }

    /// Queue optional work (a prefill) only while it leaves room for at
    /// least one reply, so it never turns a reply away; `false` if dropped.
    pub(crate) fn offer(&self, job: Job) -> bool {
        if self.waiting.load(Ordering::Relaxed) + 1 >= self.capacity {
            return false;
        }
        self.submit(job).is_ok()
    }
}

/// One worker thread's state.
struct Worker {
    index: usize,
    model: Arc<LocalModel>,
    jobs: Arc<Mutex<Receiver<Job>>>,
    waiting: Arc<AtomicUsize>,
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

    /// The oldest waiting job; `None` once the pool is dropped. Idle workers
    /// queue on the mutex, so jobs are taken in arrival order.
    fn next_job(&self) -> Option<Job> {
        let jobs = self.jobs.lock().unwrap_or_else(PoisonError::into_inner);
        let job = jobs.recv().ok()?;
        self.waiting.fetch_sub(1, Ordering::Relaxed);
        Some(job)
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
