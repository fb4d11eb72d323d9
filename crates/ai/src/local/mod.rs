//! The embedded local model (feature `local-llm`): a GGUF model run
//! in-process by llama.cpp, so Colloquy answers with no API key and no network.
//!
//! [`LocalProvider::load`] loads the model once and starts a pool of worker
//! threads, each with its own llama.cpp context;
//! [`Provider::stream_chat`](crate::Provider::stream_chat)
//! queues a reply (or refuses with
//! [`ProviderError::Overloaded`](crate::ProviderError::Overloaded) when the
//! queue is full) and returns a stream fed token by token by the worker.
//! Dropping the stream raises a cancel flag the worker checks between every
//! `decode()` call, prefill included.
//!
//! [`LocalConfig`] is here in every build; the rest needs the feature.
//!
//! # Layout
//! - `config`: the settings ([`LocalConfig`]).
//! - `provider`: [`LocalProvider`] and its reply stream.
//! - `model`: backend, log routing, loading and checking the GGUF file.
//! - `prompt`: chat template and history trimming with real token counts.
//! - `pool`: worker threads and the bounded FIFO queue.
//! - `generate`: one reply: chunked prefill, sampling, UTF-8-safe deltas.
//! - `requantize`: a Q8_0 copy of a Q4_1 model, for faster prompt processing.
//! - `tools`: tool calls in a grammar-held JSON format.

mod config;
#[cfg(feature = "local-llm")]
mod generate;
#[cfg(feature = "local-llm")]
mod model;
#[cfg(feature = "local-llm")]
mod pool;
#[cfg(feature = "local-llm")]
mod prompt;
#[cfg(feature = "local-llm")]
mod provider;
#[cfg(feature = "local-llm")]
mod requantize;
#[cfg(feature = "local-llm")]
mod tools;

pub use config::LocalConfig;
#[cfg(feature = "local-llm")]
pub use model::{LocalError, SETUP_COMMAND};
#[cfg(feature = "local-llm")]
pub use provider::LocalProvider;

/// The model the tests use: `COLLOQUY_TEST_MODEL`, or the file
/// `scripts/setup-models.sh` puts in the workspace's `data/models/`.
/// Panics with the setup command when it is missing: tests must not skip.
#[cfg(all(test, feature = "local-llm"))]
pub(crate) fn test_model_path() -> std::path::PathBuf {
    let path = std::env::var_os("COLLOQUY_TEST_MODEL")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../data/models/SmolLM2-135M-Instruct.Q4_1.gguf")
        });
    assert!(
        path.is_file(),
        "test model {} is missing: run `{SETUP_COMMAND}` from the workspace root \
         (or set COLLOQUY_TEST_MODEL)",
        path.display()
    );
    path
}
