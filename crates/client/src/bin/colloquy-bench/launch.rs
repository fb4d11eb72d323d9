//! What a run talks to: servers given with `--server`, one `colloquy` it
//! starts itself (the default), or a local cluster of `--nodes N`; and
//! stopping whatever it started.

use std::path::PathBuf;

use anyhow::Context;

use crate::{
    cluster::{ClusterSettings, LocalCluster},
    server::{self, SpawnOptions, SpawnedServer, StopSignal},
    upstream, RunArgs,
};

/// The servers of one run.
pub enum Launched {
    Given { urls: Vec<String>, pid: Option<u32> },
    Single(Box<SpawnedServer>),
    Cluster(Box<LocalCluster>),
}

impl Launched {
    /// Start what `args` asks for.
    pub async fn start(args: &RunArgs) -> anyhow::Result<Self> {
        if !args.server.is_empty() {
            let urls = args
                .server
                .iter()
                .map(|url| url.trim_end_matches('/').to_owned())
                .collect();
            return Ok(Launched::Given {
                urls,
                pid: args.server_pid,
            });
        }
        let model = match &args.local_model {
            Some(path) => server::Model::Local(path.clone()),
            None => server::Model::Upstream(
                upstream::serve("127.0.0.1:0".parse()?, args.shape.shape()).await?,
            ),
        };
        let binary: PathBuf = args
            .colloquy_bin
            .clone()
            .unwrap_or_else(server::default_binary);
        let env = server_env(args);
        match args.nodes {
            None => {
                let options = SpawnOptions {
                    env,
                    log_label: None,
                };
                Ok(Launched::Single(Box::new(
                    server::spawn(&binary, &model, &options).await?,
                )))
            }
            Some(nodes) => {
                let settings = ClusterSettings {
                    nodes,
                    postgres_url: args.postgres_url.clone(),
                    nats_url: args.nats_url.clone(),
                    lease_ttl_secs: args.lease_ttl_secs,
                };
                eprintln!("starting {nodes} nodes on PostgreSQL and NATS");
                Ok(Launched::Cluster(Box::new(
                    LocalCluster::start(&binary, &model, &env, &settings).await?,
                )))
            }
        }
    }

    pub fn urls(&self) -> Vec<String> {
        match self {
            Launched::Given { urls, .. } => urls.clone(),
            Launched::Single(server) => vec![server.base_url.clone()],
            Launched::Cluster(cluster) => cluster.urls(),
        }
    }

    /// The server processes whose memory the report sums.
    pub fn pids(&self) -> Vec<u32> {
        match self {
            Launched::Given { pid, .. } => pid.iter().copied().collect(),
            Launched::Single(server) => vec![server.pid],
            Launched::Cluster(cluster) => cluster.pids(),
        }
    }

    /// Kill node `index` of a cluster the bench started.
    pub fn kill(&self, index: usize, signal: StopSignal) -> anyhow::Result<()> {
        match self {
            Launched::Cluster(cluster) => cluster.kill(index, signal),
            _ => None.context("only nodes the bench started can be killed")?,
        }
    }

    /// Stop what the bench started and remove its scratch state.
    pub async fn stop(self) {
        match self {
            Launched::Given { .. } => {}
            // Killed on drop, as before: its data dir is a temporary one.
            Launched::Single(server) => drop(server),
            Launched::Cluster(cluster) => cluster.stop().await,
        }
    }
}

/// Settings for the servers the bench starts, raised to fit the run.
fn server_env(args: &RunArgs) -> Vec<(String, String)> {
    let users = args.sockets.div_ceil(args.sockets_per_user.max(1));
    // On a cluster each conversation also has a watcher, and a socket that
    // moves off a killed node still counts there until that node's count
    // lapses (30 s): four times the senders leaves room for both.
    let per_user = match args.nodes {
        None => args.sockets_per_user,
        Some(_) => args.sockets_per_user * 4,
    };
    // Resends after a kill come on top of a full round of messages.
    let messages_per_user = match args.nodes {
        None => args.sockets_per_user * args.turns * 2,
        Some(_) => args.sockets_per_user * args.turns * 4,
    };
    let mut env = vec![
        (
            "COLLOQUY_MAX_SOCKETS_PER_USER".to_owned(),
            per_user.to_string(),
        ),
        // Every user is an anonymous sign-up from this one address, and
        // every socket counts against the server's total (twice over while
        // a chaos drop is resuming).
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
            messages_per_user.max(120).to_string(),
        ),
        // The same for the anonymous plan's daily quota. A plan set here
        // replaces the built-in one, so its token and voice limits go too.
        (
            "COLLOQUY_PLANS__ANONYMOUS__MESSAGES_PER_DAY".to_owned(),
            messages_per_user.max(120).to_string(),
        ),
    ];
    if let Some(tokens) = args.max_reply_tokens {
        env.push(("COLLOQUY_MAX_REPLY_TOKENS".to_owned(), tokens.to_string()));
    }
    if let Some(workers) = args.local_workers {
        env.push(("COLLOQUY_LOCAL__WORKERS".to_owned(), workers.to_string()));
    }
    env
}
