//! `colloquy-bench`: a load generator for Colloquy's chat socket.
//!
//! `run` starts a fake OpenAI-compatible upstream and a `colloquy` server
//! pointed at it (or uses `--server`), opens N sockets at a set rate, runs
//! chat turns, checks every event (lost, duplicated, out of order) and every
//! reply whole, optionally drops sockets mid-reply (`--chaos`), and prints
//! latency and memory figures. `upstream` serves only the fake upstream, for
//! a server started by hand.

mod run;
mod server;
mod stats;
mod upstream;

use std::{
    net::SocketAddr,
    path::PathBuf,
    process::ExitCode,
    sync::{atomic::Ordering, Arc},
    time::{Duration, Instant},
};

use clap::{Args, Parser, Subcommand};
use tokio::sync::watch;

use crate::{
    run::{Phase, Plan, Shared},
    stats::Memory,
    upstream::UpstreamShape,
};

#[derive(Parser)]
#[command(name = "colloquy-bench", about = "Load generator for Colloquy")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a load test and print the figures.
    Run(RunArgs),
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
    /// An already running server (its upstream must be `colloquy-bench upstream` with the same shape).
    #[arg(long)]
    server: Option<String>,
    /// Its process id, to report memory.
    #[arg(long)]
    server_pid: Option<u32>,
    /// The `colloquy` binary to start when no --server is given.
    #[arg(long)]
    colloquy_bin: Option<PathBuf>,
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
        Command::Run(args) => run(args).await,
    }
}

async fn run(args: RunArgs) -> anyhow::Result<bool> {
    let shape = args.shape.shape();
    let (base_url, pid, _server) = match &args.server {
        Some(url) => (url.trim_end_matches('/').to_owned(), args.server_pid, None),
        None => {
            let model = match &args.local_model {
                Some(path) => server::Model::Local(path.clone()),
                None => {
                    server::Model::Upstream(upstream::serve("127.0.0.1:0".parse()?, shape).await?)
                }
            };
            let binary = args
                .colloquy_bin
                .clone()
                .unwrap_or_else(server::default_binary);
            let per_user = args.sockets_per_user.to_string();
            let users = args.sockets.div_ceil(args.sockets_per_user.max(1));
            let mut env = vec![
                ("COLLOQUY_MAX_SOCKETS_PER_USER".to_owned(), per_user),
                // Every user is an anonymous sign-up from this one address,
                // and every socket counts against the server's total (twice
                // over while a chaos drop is resuming).
                (
                    "COLLOQUY_AUTH__ANONYMOUS_PER_HOUR_PER_IP".to_owned(),
                    users.max(1).to_string(),
                ),
                (
                    "COLLOQUY_MAX_CONNECTIONS".to_owned(),
                    (args.sockets * 2).max(20_000).to_string(),
                ),
                // Every socket may have a reply streaming at once.
                (
                    "COLLOQUY_MAX_CONCURRENT_GENERATIONS".to_owned(),
                    args.sockets.max(256).to_string(),
                ),
                // Every socket of a user sends at once; the per-user budget must allow a full round.
                (
                    "COLLOQUY_MESSAGES_PER_MINUTE_PER_USER".to_owned(),
                    (args.sockets_per_user * args.turns * 2)
                        .max(120)
                        .to_string(),
                ),
            ];
            if let Some(tokens) = args.max_reply_tokens {
                env.push(("COLLOQUY_MAX_REPLY_TOKENS".to_owned(), tokens.to_string()));
            }
            if let Some(workers) = args.local_workers {
                env.push(("COLLOQUY_LOCAL__WORKERS".to_owned(), workers.to_string()));
            }
            let spawned = server::spawn(&binary, &model, &env).await?;
            (spawned.base_url.clone(), Some(spawned.pid), Some(spawned))
        }
    };
    let plan = Arc::new(Plan {
        base_url,
        sockets: args.sockets,
        sockets_per_user: args.sockets_per_user.max(1),
        connect_rate: args.connect_rate,
        turns: args.turns,
        turn_concurrency: args.turn_concurrency,
        chaos: args.chaos,
        expected: args
            .local_model
            .is_none()
            .then(|| (shape.expected_reply(), shape.tokens)),
    });
    let rss = || pid.and_then(server::rss_bytes);
    let mut memory = Memory {
        before_sockets: rss(),
        ..Memory::default()
    };
    let started = Instant::now();
    eprintln!(
        "creating {} users",
        plan.sockets.div_ceil(plan.sockets_per_user)
    );
    let tokens = run::make_users(&plan).await?;
    let shared = Shared::new();
    let (phase_tx, phase_rx) = watch::channel(Phase::Connect);
    eprintln!(
        "opening {} sockets at {}/s",
        plan.sockets, plan.connect_rate
    );
    run::start_sockets(plan.clone(), tokens, shared.clone(), phase_rx).await;
    wait_until(|| shared.settled.load(Ordering::Relaxed) as usize >= plan.sockets).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    memory.sockets_idle = rss();
    memory.peak = memory.sockets_idle;
    eprintln!(
        "{} sockets open; running {} turn(s) each",
        shared.open_now.load(Ordering::Relaxed),
        plan.turns
    );
    let _ = phase_tx.send(Phase::Turns);
    while (shared.finished.load(Ordering::Relaxed) as usize) < plan.sockets {
        tokio::time::sleep(Duration::from_millis(200)).await;
        memory.peak = memory.peak.max(rss());
    }
    {
        let mut totals = shared.totals.lock().unwrap_or_else(|p| p.into_inner());
        let held = shared.open_now.load(Ordering::Relaxed);
        totals.peak_held = totals.peak_held.max(held);
    }
    let _ = phase_tx.send(Phase::Release);
    let totals = shared.totals.lock().unwrap_or_else(|p| p.into_inner());
    stats::report(
        &totals,
        &memory,
        plan.sockets as u64,
        args.local_model.is_none().then_some(shape.interval),
        started.elapsed(),
    );
    Ok(totals.clean() && totals.turns_completed as usize == plan.sockets * plan.turns)
}

async fn wait_until(done: impl Fn() -> bool) {
    while !done() {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
