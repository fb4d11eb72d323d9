//! Starting a `colloquy` server for the bench as a child process, pointed at
//! the bench's upstream, with a throwaway data dir; stopping or killing it;
//! and reading its memory.

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
    child: Child,
    _data_dir: tempfile::TempDir,
}

/// The signal that stops a server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StopSignal {
    /// As an operator stops it: it finishes its replies, then closes its sockets.
    Sigterm,
    /// As a crash: nothing runs after it.
    Sigkill,
}

impl StopSignal {
    fn name(self) -> &'static str {
        match self {
            StopSignal::Sigterm => "TERM",
            StopSignal::Sigkill => "KILL",
        }
    }
}

impl SpawnedServer {
    /// Send `signal` now, without waiting for the process to end. The
    /// `kill` utility does it: one call in a bench is not worth an unsafe
    /// libc binding.
    pub fn signal(&self, signal: StopSignal) -> anyhow::Result<()> {
        let status = std::process::Command::new("kill")
            .args(["-s", signal.name(), &self.pid.to_string()])
            .stderr(Stdio::null())
            .status()
            .context("running kill")?;
        if !status.success() {
            bail!("kill -s {} {} failed", signal.name(), self.pid);
        }
        Ok(())
    }

    /// Stop as an operator would (SIGTERM), SIGKILL after `grace`; reaps the process.
    pub async fn stop(&mut self, grace: Duration) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.signal(StopSignal::Sigterm);
        }
        if tokio::time::timeout(grace, self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
    }
}

/// How to start a server beyond its model.
#[derive(Default)]
pub struct SpawnOptions {
    /// Settings added or overridden (e.g. a limit raised for a large run).
    pub env: Vec<(String, String)>,
    /// Prefix of the server's log lines on the bench's stderr (one of
    /// several nodes); `None` passes them through as they are.
    pub log_label: Option<String>,
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

/// Start the server and wait until `/healthz` answers.
pub async fn spawn(
    binary: &PathBuf,
    model: &Model,
    options: &SpawnOptions,
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
        .stderr(if options.log_label.is_some() {
            Stdio::piped()
        } else {
            Stdio::inherit()
        })
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
    for (key, value) in &options.env {
        command.env(key, value);
    }
    let mut child = command.spawn().with_context(|| {
        format!(
            "starting {} (build it with `cargo build --release -p colloquy`)",
            binary.display()
        )
    })?;
    let pid = child.id().context("server exited at once")?;
    if let (Some(label), Some(stderr)) = (options.log_label.clone(), child.stderr.take()) {
        // Ends with the pipe, when the process exits.
        tokio::spawn(forward_log(label, stderr));
    }
    let base_url = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(120) {
        if let Ok(response) = client.get(format!("{base_url}/healthz")).send().await {
            if response.status().is_success() {
                return Ok(SpawnedServer {
                    base_url,
                    pid,
                    child,
                    _data_dir: data_dir,
                });
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("the server did not become healthy within 120 s")
}

/// Copy a node's log lines to stderr, each prefixed with the node's label,
/// so the lines of several nodes can be told apart.
async fn forward_log(label: String, stderr: tokio::process::ChildStderr) {
    use tokio::io::AsyncBufReadExt;
    let mut lines = tokio::io::BufReader::new(stderr).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        eprintln!("[{label}] {line}");
    }
}

/// Resident memory of process `pid` in bytes (Linux `/proc`).
pub fn rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// CPU time (user + system, all threads) process `pid` has used so far
/// (Linux `/proc/<pid>/stat`, whose times are in USER_HZ ticks, 100 a
/// second in Linux's user-space ABI).
pub fn cpu_time(pid: u32) -> Option<Duration> {
    const TICKS_PER_SECOND: u64 = 100;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces: the fields are counted after its `)`.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(Duration::from_millis(
        (utime + stime) * 1000 / TICKS_PER_SECOND,
    ))
}
