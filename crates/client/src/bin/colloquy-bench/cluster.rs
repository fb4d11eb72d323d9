//! A local cluster for the bench: N `colloquy` nodes as child processes on
//! one scratch PostgreSQL database (created here, dropped at the end) and
//! the NATS server, under a random namespace whose event stream and KV
//! buckets are deleted at the end. Nothing is shared with another run or
//! with a cluster started by hand on the same services.

use std::{str::FromStr, time::Duration};

use anyhow::Context;
use rand::{distributions::Alphanumeric, Rng};
use sqlx::{
    postgres::{PgConnectOptions, PgConnection},
    ConnectOptions as _, Connection as _, Executor as _,
};

use crate::server::{self, Model, SpawnOptions, SpawnedServer, StopSignal};

/// What the cluster runs on.
pub struct ClusterSettings {
    pub nodes: usize,
    /// A PostgreSQL server URL whose user may create databases.
    pub postgres_url: String,
    /// NATS with JetStream.
    pub nats_url: String,
    /// `cluster.lease_ttl_secs` of every node; the server's default when `None`.
    pub lease_ttl_secs: Option<u64>,
}

/// Running nodes and what to remove once they are gone.
pub struct LocalCluster {
    pub nodes: Vec<SpawnedServer>,
    database: ScratchDatabase,
    namespace: String,
    nats_url: String,
}

/// How long a node stopped at the end may take to finish (its
/// `shutdown_grace_secs` is 10) before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(15);

/// How long the event stream keeps events if the bench never gets to
/// delete it (killed itself): ten minutes, long past any run's replies.
const EVENT_RETENTION_SECS: u64 = 600;

impl LocalCluster {
    /// Create the database, then start the nodes one after the other (the
    /// first one migrates the database). On failure, whatever was made is
    /// removed again.
    pub async fn start(
        binary: &std::path::PathBuf,
        model: &Model,
        env: &[(String, String)],
        settings: &ClusterSettings,
    ) -> anyhow::Result<Self> {
        let database = ScratchDatabase::create(&settings.postgres_url).await?;
        let namespace = format!("bench_{}", uuid::Uuid::new_v4().simple());
        let secret: String = rand::thread_rng()
            .sample_iter(&Alphanumeric)
            .take(48)
            .map(char::from)
            .collect();
        let mut env = env.to_vec();
        env.extend([
            ("DATABASE_URL".to_owned(), database.url.clone()),
            ("COLLOQUY_NATS_URL".to_owned(), settings.nats_url.clone()),
            // One secret: a token one node signs is good on every node.
            ("COLLOQUY_JWT_SECRET".to_owned(), secret),
            ("COLLOQUY_CLUSTER__NAMESPACE".to_owned(), namespace.clone()),
            (
                "COLLOQUY_CLUSTER__EVENT_RETENTION_SECS".to_owned(),
                EVENT_RETENTION_SECS.to_string(),
            ),
        ]);
        if let Some(ttl) = settings.lease_ttl_secs {
            env.push((
                "COLLOQUY_CLUSTER__LEASE_TTL_SECS".to_owned(),
                ttl.to_string(),
            ));
        }
        let mut cluster = Self {
            nodes: Vec::new(),
            database,
            namespace,
            nats_url: settings.nats_url.clone(),
        };
        for index in 0..settings.nodes {
            let options = SpawnOptions {
                env: env.clone(),
                log_label: Some(format!("node {}", index + 1)),
            };
            match server::spawn(binary, model, &options).await {
                Ok(node) => cluster.nodes.push(node),
                Err(error) => {
                    cluster.stop().await;
                    return Err(error.context(format!("starting node {}", index + 1)));
                }
            }
        }
        Ok(cluster)
    }

    pub fn urls(&self) -> Vec<String> {
        self.nodes
            .iter()
            .map(|node| node.base_url.clone())
            .collect()
    }

    pub fn pids(&self) -> Vec<u32> {
        self.nodes.iter().map(|node| node.pid).collect()
    }

    /// Send `signal` to node `index` (0-based) now.
    pub fn kill(&self, index: usize, signal: StopSignal) -> anyhow::Result<()> {
        self.nodes
            .get(index)
            .context("no such node")?
            .signal(signal)
    }

    /// Stop every node, then delete the namespace's stream and buckets and
    /// drop the database. Failures to clean up are reported, not fatal: the
    /// run's figures stand.
    pub async fn stop(mut self) {
        for node in &mut self.nodes {
            node.stop(STOP_GRACE).await;
        }
        if let Err(error) = delete_streams(&self.nats_url, &self.namespace).await {
            eprintln!(
                "warning: the NATS streams of namespace {} were not all deleted ({error:#}); \
                 their events expire after {EVENT_RETENTION_SECS} s",
                self.namespace
            );
        }
        if let Err(error) = self.database.drop_it().await {
            eprintln!("warning: the scratch database was not dropped: {error:#}");
        }
    }
}

/// Delete the streams one cluster namespace uses: its event stream and the
/// streams behind its lease and socket-count KV buckets.
async fn delete_streams(nats_url: &str, namespace: &str) -> anyhow::Result<()> {
    let client = async_nats::connect(nats_url)
        .await
        .context("connecting to NATS")?;
    let jetstream = async_nats::jetstream::new(client);
    let mut failures = Vec::new();
    for stream in [
        format!("{namespace}_events"),
        format!("KV_{namespace}_leases"),
        format!("KV_{namespace}_sockets"),
    ] {
        if let Err(error) = jetstream.delete_stream(&stream).await {
            failures.push(format!("{stream}: {error}"));
        }
    }
    if failures.is_empty() {
        Ok(())
    } else {
        anyhow::bail!(failures.join("; "))
    }
}

/// A PostgreSQL database made for one run.
struct ScratchDatabase {
    /// Where the nodes connect.
    url: String,
    server: PgConnectOptions,
    name: String,
}

impl ScratchDatabase {
    async fn create(server_url: &str) -> anyhow::Result<Self> {
        let server = PgConnectOptions::from_str(server_url).context("the PostgreSQL URL")?;
        let name = format!("colloquy_bench_{}", uuid::Uuid::new_v4().simple());
        let mut admin = server
            .connect()
            .await
            .context("connecting to PostgreSQL (is it running?)")?;
        admin
            .execute(format!(r#"CREATE DATABASE "{name}""#).as_str())
            .await
            .context("creating the scratch database")?;
        admin.close().await?;
        let url = server.clone().database(&name).to_url_lossy().to_string();
        Ok(Self { url, server, name })
    }

    /// Drop it, whoever is still connected (a node that would not stop).
    async fn drop_it(&self) -> anyhow::Result<()> {
        let mut admin: PgConnection = self.server.connect().await?;
        admin
            .execute(format!(r#"DROP DATABASE IF EXISTS "{}" WITH (FORCE)"#, self.name).as_str())
            .await?;
        admin.close().await?;
        Ok(())
    }
}
