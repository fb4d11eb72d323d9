//! Starting a `colloquy` server for the bench as a child process, pointed at
//! the bench's upstream, with a throwaway data dir; and reading its memory.

use std::{
    net::{SocketAddr, TcpListener},
    path::PathBuf,
    process::Stdio,
    time::{Duration, Instant},
};

use anyhow::{bail, Context};
use tokio::process::{Child, Command};

/// A server child process; killed on drop.
pub struct SpawnedServer {
    pub base_url: String,
    pub pid: u32,
    _child: Child,
    _data_dir: tempfile::TempDir,
}

/// The `colloquy` binary next to this one (same target dir), unless given.
pub fn default_binary() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|dir| dir.join("colloquy")))
        .unwrap_or_else(|| PathBuf::from("colloquy"))
}

fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Which model the spawned server uses.
pub enum Model {
    /// The bench's fake OpenAI-compatible upstream.
    Upstream(SocketAddr),
    /// The embedded model, from this GGUF file (needs a `local-llm` build).
    Local(PathBuf),
}

/// Start the server and wait until `/healthz` answers. `extra_env` adds or
/// overrides settings (e.g. raising a limit for a large run).
pub async fn spawn(
    binary: &PathBuf,
    model: &Model,
    extra_env: &[(String, String)],
) -> anyhow::Result<SpawnedServer> {
    let data_dir = tempfile::tempdir()?;
    let port = free_port()?;
    let mut command = Command::new(binary);
    command
        .arg("serve")
        .env("COLLOQUY_ADDR", format!("127.0.0.1:{port}"))
        .env("COLLOQUY_DATA_DIR", data_dir.path())
        .env("COLLOQUY_LOG", "warn")
        .env_remove("OPENAI_API_KEY")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .kill_on_drop(true);
    match model {
        Model::Upstream(upstream) => {
            command
                .env("COLLOQUY_MODEL", "openai:bench")
                .env("OPENAI_BASE_URL", format!("http://{upstream}/v1"));
        }
        Model::Local(path) => {
            command
                .env("COLLOQUY_MODEL", "local")
                .env("COLLOQUY_LOCAL__MODEL_PATH", path);
        }
    }
    for (key, value) in extra_env {
        command.env(key, value);
    }
    let child = command.spawn().with_context(|| {
        format!(
            "starting {} (build it with `cargo build --release -p colloquy`)",
            binary.display()
        )
    })?;
    let pid = child.id().context("server exited at once")?;
    let base_url = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(120) {
        if let Ok(response) = client.get(format!("{base_url}/healthz")).send().await {
            if response.status().is_success() {
                return Ok(SpawnedServer {
                    base_url,
                    pid,
                    _child: child,
                    _data_dir: data_dir,
                });
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("the server did not become healthy within 120 s")
}

/// Resident memory of process `pid` in bytes (Linux `/proc`).
pub fn rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}
