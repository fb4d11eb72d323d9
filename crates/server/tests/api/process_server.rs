//! The server binary as a child process, so a test can kill it for real
//! (SIGKILL) or stop it as an operator would (SIGTERM).

use std::{
    io::{BufRead, BufReader},
    net::SocketAddr,
    path::Path,
    process::{Child, Command, Stdio},
};

use crate::fake_openai::FakeOpenAi;

/// The token secret of every test server, in process or not: a token one
/// node signs is good on another.
pub const TEST_JWT_SECRET: &str = "test-secret-test-secret-test-secret!";

/// A running server binary.
pub struct Server {
    child: Child,
    addr: SocketAddr,
}

impl Server {
    /// Start the binary on an ephemeral port with `data_dir`, `database_url`,
    /// the fake upstream as model, and `env` on top.
    pub fn start(
        data_dir: &Path,
        database_url: &str,
        upstream: &FakeOpenAi,
        env: &[(&str, &str)],
    ) -> Self {
        let mut command = Command::new(env!("CARGO_BIN_EXE_colloquy"));
        command
            .args([
                "serve",
                "--addr",
                "127.0.0.1:0",
                "--model",
                "openai:fake-model",
            ])
            .arg("--data-dir")
            .arg(data_dir)
            .env("DATABASE_URL", database_url)
            .env("OPENAI_BASE_URL", upstream.base_url())
            .env_remove("OPENAI_API_KEY")
            .env("COLLOQUY_JWT_SECRET", TEST_JWT_SECRET)
            .env("COLLOQUY_VOICE", "none")
            .env("COLLOQUY_AUTO_TITLES", "false")
            .env("COLLOQUY_LOG", "info")
            .env("NO_COLOR", "1")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        let mut child = command.spawn().expect("server binary starts");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut lines = BufReader::new(stdout).lines();
        let addr = loop {
            let line = lines
                .next()
                .expect("the server logs its address before exiting")
                .expect("readable log");
            if let Some((_, rest)) = line.split_once("listening on http://") {
                let addr = rest.split_whitespace().next().unwrap_or_default();
                break addr.parse().expect("a socket address");
            }
        };
        // Keep draining the log so the server never blocks on a full pipe.
        std::thread::spawn(move || lines.for_each(drop));
        Self { child, addr }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn ws_url(&self, path: &str) -> String {
        format!("ws://{}{path}", self.addr)
    }

    /// SIGKILL, and reap it.
    pub fn kill(mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("reaped");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
