//! The `colloquy` binary: parse flags, set up logging, build the app, serve.

use std::{net::SocketAddr, path::PathBuf, process::ExitCode};

use clap::{Args, Parser, Subcommand};
use colloquy::{
    config::{Config, Overrides},
    shutdown_signal, App,
};
use tracing_subscriber::EnvFilter;

#[derive(Parser)]
#[command(
    name = "colloquy",
    version,
    about = "Colloquy: a real-time AI chat server"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    serve: ServeArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (the default).
    Serve(ServeArgs),
}

#[derive(Args, Clone, Default)]
struct ServeArgs {
    /// TOML configuration file.
    #[arg(long, env = "COLLOQUY_CONFIG")]
    config: Option<PathBuf>,
    /// Address to listen on [env: COLLOQUY_ADDR] [default: 127.0.0.1:8080].
    #[arg(long)]
    addr: Option<SocketAddr>,
    /// Data directory [env: COLLOQUY_DATA_DIR] [default: ./data].
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Database URL [env: DATABASE_URL] [default: SQLite in the data dir].
    #[arg(long)]
    database_url: Option<String>,
    /// Model: `local`, `openai[:model]` or `none` [env: COLLOQUY_MODEL].
    #[arg(long)]
    model: Option<String>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let args = match cli.command {
        Some(Command::Serve(args)) => args,
        None => cli.serve,
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_env("COLLOQUY_LOG")
                .or_else(|_| EnvFilter::try_from_default_env())
                .unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!("{error:#}");
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    // Every socket is a file descriptor; many systems start with a soft limit of 1024.
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => tracing::debug!(limit, "open file limit"),
        Err(error) => tracing::warn!(%error, "could not raise the open file limit"),
    }
    let overrides = Overrides {
        addr: args.addr,
        data_dir: args.data_dir,
        database_url: args.database_url,
        model: args.model,
    };
    let config = Config::load(args.config.as_deref(), &overrides)?;
    tracing::debug!(?config, "configuration");
    let app = App::build(config).await?;
    let addr = app.local_addr()?;
    tracing::info!("Colloquy listening on http://{addr}");
    app.run_until_stopped(shutdown_signal()).await
}
