//! Settings of the embedded local model. They exist in every build, so
//! the server's configuration reads the same with or without the
//! `local-llm` feature; only loading the model needs it.

use std::path::PathBuf;

/// Settings of the embedded local model (feature `local-llm`).
#[derive(Debug, Clone, PartialEq)]
pub struct LocalConfig {
    /// The GGUF file to load.
    pub model_path: PathBuf,
    /// Generations that run at once, each on its own OS thread and context.
    pub workers: usize,
    /// CPU threads each generation uses.
    pub threads_per_worker: usize,
    /// Requests allowed to wait for a worker; beyond it callers get `Overloaded`.
    pub queue_capacity: usize,
    /// Context window in tokens (prompt + reply).
    pub context_tokens: u32,
    /// Default cap on generated tokens when the request sets none.
    pub max_tokens: u32,
    pub temperature: f32,
    pub top_p: f32,
    pub repeat_penalty: f32,
    /// Load a Q8_0 copy of a Q4_1 model (derived once, next to it): about
    /// twice as fast at processing the prompt, so the first token comes sooner.
    pub fast_prefill: bool,
    /// Longest a conversation's next turn waits for the busy worker that
    /// holds its history in cache before another worker reads it afresh.
    pub sticky_wait_ms: u64,
    /// Offer a request's tools to the model, held to a call format by a
    /// grammar. Off by default: a 135M-parameter model calls tools poorly.
    pub tools: bool,
}

impl Default for LocalConfig {
    fn default() -> Self {
        Self {
            model_path: PathBuf::from("data/models/SmolLM2-135M-Instruct.Q4_1.gguf"),
            workers: 2,
            threads_per_worker: 1,
            queue_capacity: 32,
            context_tokens: 2048,
            max_tokens: 256,
            temperature: 0.3,
            top_p: 0.9,
            repeat_penalty: 1.2,
            fast_prefill: true,
            sticky_wait_ms: 200,
            tools: false,
        }
    }
}
