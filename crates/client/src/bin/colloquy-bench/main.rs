//! `colloquy-bench`: a load generator for Colloquy's chat socket.
//!
//! `run` starts a fake OpenAI-compatible upstream and a `colloquy` server
//! pointed at it (or a local cluster of `--nodes N` on PostgreSQL and NATS,
//! or uses the `--server`s given), opens N sockets at a set rate, runs
//! chat turns, checks every event (lost, duplicated, out of order) and every
//! reply whole, optionally drops sockets mid-reply (`--chaos`) or kills a
//! node mid-run (`--kill-node`), and prints latency and memory figures. On
//! several servers every conversation also has a watcher socket on another
//! node, checked the same way. `upstream` serves only the fake upstream,
//! for a server started by hand.

mod bench;
mod cluster;
mod launch;
mod nodes;
mod run;
mod server;
mod stats;
mod turn;
mod upstream;
mod watcher;

use std::{net::SocketAddr, path::PathBuf, process::ExitCode, time::Duration};

use clap::{Args, Parser, Subcommand};

use crate::{server::StopSignal, upstream::UpstreamShape};

#[derive(Parser)]
#[command(name = "colloquy-bench", about = "Load generator for Colloquy")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a load test and print the figures.
    Run(Box<RunArgs>),
    /// Serve only the fake OpenAI-compatible upstream.
    Upstream {
        #[arg(long, default_value = "127.0.0.1:9100")]
        addr: SocketAddr,
        #[command(flatten)]
        shape: ShapeArgs,
    },
}

#[derive(Args, Clone, Copy)]
struct ShapeArgs {
    /// Tokens in every upstream reply.
    #[arg(long, default_value_t = 20)]
    tokens: usize,
    /// Delay before each upstream token, in milliseconds.
    #[arg(long, default_value_t = 10)]
    token_interval_ms: u64,
}

impl ShapeArgs {
    fn shape(self) -> UpstreamShape {
        UpstreamShape {
            tokens: self.tokens,
            interval: Duration::from_millis(self.token_interval_ms),
        }
    }
}

#[derive(Args)]
struct RunArgs {
    /// An already running server (its upstream must be `colloquy-bench
    /// upstream` with the same shape); repeat it for the nodes of a cluster.
    #[arg(long, conflicts_with = "nodes")]
    server: Vec<String>,
    /// Its process id, to report memory.
    #[arg(long)]
    server_pid: Option<u32>,
    /// The `colloquy` binary to start when no --server is given.
    #[arg(long)]
    colloquy_bin: Option<PathBuf>,
    /// Start a local cluster of this many nodes on PostgreSQL and NATS
    /// (a scratch database and namespace of its own, removed at the end).
    #[arg(long)]
    nodes: Option<usize>,
    /// PostgreSQL server the cluster's scratch database is created on.
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/postgres")]
    postgres_url: String,
    /// NATS server (with JetStream) of the cluster.
    #[arg(long, default_value = "nats://127.0.0.1:4222")]
    nats_url: String,
    /// `cluster.lease_ttl_secs` of the nodes (the server's default if not given).
    #[arg(long)]
    lease_ttl_secs: Option<u64>,
    /// Kill the last node mid-run, as an operator stops it or as a crash.
    #[arg(long, requires = "nodes")]
    kill_node: Option<StopSignal>,
    /// When to kill it, after the turns start.
    #[arg(long, default_value_t = 2000)]
    kill_after_ms: u64,
    /// Concurrent sockets.
    #[arg(long, default_value_t = 100)]
    sockets: usize,
    /// Sockets per (anonymous) user.
    #[arg(long, default_value_t = 25)]
    sockets_per_user: usize,
    /// New sockets per second.
    #[arg(long, default_value_t = 500)]
    connect_rate: u32,
    /// Chat turns per socket.
    #[arg(long, default_value_t = 1)]
    turns: usize,
    /// Turns in flight at once across all sockets.
    #[arg(long, default_value_t = 1000)]
    turn_concurrency: usize,
    /// Offer this many turns per second, arriving at random (a Poisson
    /// process) on whichever socket is free, instead of each socket's turns
    /// back to back: a sustained open load (--turn-concurrency is ignored).
    #[arg(long)]
    rate: Option<f64>,
    /// Probability that a turn's socket is dropped mid-reply and resumed.
    #[arg(long, default_value_t = 0.0)]
    chaos: f64,
    /// Use the embedded model from this GGUF file instead of the fake
    /// upstream (the colloquy binary must be built with `--features local-llm`).
    #[arg(long)]
    local_model: Option<PathBuf>,
    /// Cap on tokens per reply (COLLOQUY_MAX_REPLY_TOKENS on the spawned server).
    #[arg(long)]
    max_reply_tokens: Option<u32>,
    /// Replies the embedded model generates at once (COLLOQUY_LOCAL__WORKERS).
    #[arg(long)]
    local_workers: Option<usize>,
    #[command(flatten)]
    shape: ShapeArgs,
}

fn main() -> ExitCode {
    tracing_subscriber_init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(async_main(Cli::parse())) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(2),
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn tracing_subscriber_init() {
    // The bench prints its report on stdout; warnings from sockets are enough on stderr.
}

async fn async_main(cli: Cli) -> anyhow::Result<bool> {
    // Each socket is a file descriptor, on both sides.
    let _ = rlimit::increase_nofile_limit(u64::MAX);
    match cli.command {
        Command::Upstream { addr, shape } => {
            let bound = upstream::serve(addr, shape.shape()).await?;
            println!("fake upstream on http://{bound}/v1 (ctrl-c to stop)");
            tokio::signal::ctrl_c().await?;
            Ok(true)
        }
        Command::Run(args) => bench::run(*args).await,
    }
}
