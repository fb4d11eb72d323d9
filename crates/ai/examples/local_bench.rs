//! Quick figures for the embedded model, straight through the provider (no
//! server): load time, time to first token (TTFT) for a short prompt with one
//! worker at 1 and 2 threads, decode speed, and the combined speed of several
//! concurrent replies.
//!
//! ```text
//! cargo run --release -p colloquy-ai --features local-llm --example local_bench -- [MODEL] [ROUNDS] [CONCURRENT]
//! ```
//! MODEL defaults to `COLLOQUY_TEST_MODEL` or `data/models/SmolLM2-135M-Instruct.Q4_1.gguf`.

use std::{
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use colloquy_ai::{
    ChatMessage, ChatRequest, LocalConfig, LocalProvider, Provider, Role, StreamEvent,
};
use futures::StreamExt;

/// One reply's timings.
struct Run {
    ttft: Duration,
    total: Duration,
    tokens: u32,
    text: String,
}

impl Run {
    /// Decode speed after the first token.
    fn decode_tps(&self) -> f64 {
        let decode = (self.total - self.ttft).as_secs_f64();
        f64::from(self.tokens.saturating_sub(1)) / decode.max(1e-9)
    }
}

fn request() -> ChatRequest {
    ChatRequest {
        messages: vec![
            ChatMessage::new(Role::System, "You are a helpful assistant."),
            ChatMessage::new(Role::User, "Hi! Tell me about the city of Paris."),
        ],
        max_tokens: Some(128),
        temperature: None,
        tools: Vec::new(),
        tool_choice: Default::default(),
    }
}

async fn one_reply(provider: &LocalProvider) -> anyhow_like::Result<Run> {
    let started = Instant::now();
    let mut stream = provider.stream_chat(request()).await?;
    let mut ttft = None;
    let mut text = String::new();
    while let Some(event) = stream.next().await {
        match event? {
            StreamEvent::Delta(delta) => {
                ttft.get_or_insert_with(|| started.elapsed());
                text.push_str(&delta);
            }
            StreamEvent::Finished(done) => {
                let tokens = done.usage.map_or(0, |u| u.completion_tokens);
                let total = started.elapsed();
                return Ok(Run {
                    ttft: ttft.unwrap_or(total),
                    total,
                    tokens,
                    text,
                });
            }
        }
    }
    Err("the stream ended without Finished".into())
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

async fn sequential(model: &Path, threads: usize, rounds: usize) -> anyhow_like::Result<()> {
    let started = Instant::now();
    let provider = LocalProvider::load(&LocalConfig {
        model_path: model.to_path_buf(),
        workers: 1,
        threads_per_worker: threads,
        ..LocalConfig::default()
    })?;
    let load = started.elapsed();
    // Warm-up (pages the weights in); its text shows the reply is sensible.
    let warm_up = one_reply(&provider).await?;
    if threads == 1 {
        println!("sample reply: {:?}", warm_up.text);
    }
    let mut runs = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        runs.push(one_reply(&provider).await?);
    }
    let mut ttfts: Vec<_> = runs.iter().map(|r| r.ttft).collect();
    ttfts.sort();
    let tokens: u32 = runs.iter().map(|r| r.tokens).sum();
    let tps = runs.iter().map(Run::decode_tps).sum::<f64>() / runs.len() as f64;
    println!(
        "1 worker x {threads} thread(s): load {:.0} ms | TTFT p50 {:.0} ms, p99 {:.0} ms | decode {:.1} tok/s | {} replies, {} tokens",
        ms(load),
        ms(percentile(&ttfts, 0.5)),
        ms(percentile(&ttfts, 0.99)),
        tps,
        runs.len(),
        tokens
    );
    Ok(())
}

async fn concurrent(model: &Path, replies: usize, rounds: usize) -> anyhow_like::Result<()> {
    let provider = LocalProvider::load(&LocalConfig {
        model_path: model.to_path_buf(),
        workers: replies,
        threads_per_worker: 1,
        ..LocalConfig::default()
    })?;
    one_reply(&provider).await?;
    let mut ttfts = Vec::new();
    let mut combined = Vec::new();
    for _ in 0..rounds {
        let started = Instant::now();
        let runs = futures::future::join_all((0..replies).map(|_| one_reply(&provider))).await;
        let wall = started.elapsed().as_secs_f64();
        let mut tokens = 0;
        for run in runs {
            let run = run?;
            tokens += run.tokens;
            ttfts.push(run.ttft);
        }
        combined.push(f64::from(tokens) / wall);
    }
    ttfts.sort();
    println!(
        "{replies} workers x 1 thread, {replies} concurrent replies: combined {:.1} tok/s | TTFT p50 {:.0} ms, p99 {:.0} ms | {rounds} rounds",
        combined.iter().sum::<f64>() / combined.len() as f64,
        ms(percentile(&ttfts, 0.5)),
        ms(percentile(&ttfts, 0.99)),
    );
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow_like::Result<()> {
    let mut args = std::env::args().skip(1);
    let model = args
        .next()
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("COLLOQUY_TEST_MODEL").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("data/models/SmolLM2-135M-Instruct.Q4_1.gguf"));
    let rounds: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(10);
    let replies: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(4);
    println!("model {}", model.display());
    sequential(&model, 1, rounds).await?;
    sequential(&model, 2, rounds).await?;
    concurrent(&model, replies, rounds.div_ceil(3).max(2)).await?;
    Ok(())
}

/// A boxed error is all an example needs (the crate does not depend on anyhow).
mod anyhow_like {
    pub type Result<T> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;
}
