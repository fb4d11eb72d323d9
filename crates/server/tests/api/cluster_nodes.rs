//! Several real nodes of one cluster in this process: each its own server
//! on an ephemeral port and data dir, all on one scratch PostgreSQL
//! database and the local NATS server (`COLLOQUY_TEST_NATS_URL`), under a
//! namespace of their own so test runs never meet.

use colloquy::{config::Config, store::ScratchDatabase};
use tempfile::TempDir;

use crate::{
    fake_openai::FakeOpenAi,
    helpers::{start_node, test_config, TestApp, TestData},
};

/// The NATS server the cluster tests use.
pub fn nats_url() -> String {
    std::env::var("COLLOQUY_TEST_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into())
}

/// A running cluster. Nodes are dropped (aborted) before the database.
pub struct TestCluster {
    pub nodes: Vec<TestApp>,
    pub upstream: FakeOpenAi,
    dirs: Vec<TempDir>,
    /// Dropped (and removed) after the nodes.
    _database: ScratchDatabase,
}

/// A PostgreSQL scratch database, whatever `COLLOQUY_TEST_DATABASE` says:
/// a cluster shares one database server.
pub async fn cluster_database() -> ScratchDatabase {
    let server = std::env::var("COLLOQUY_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| colloquy::store::scratch::DEFAULT_POSTGRES_URL.into());
    ScratchDatabase::postgres(&server)
        .await
        .expect("a scratch PostgreSQL database (is PostgreSQL running?)")
}

/// Start `count` nodes, each adjusted by `tweak` after the shared settings.
pub async fn spawn_cluster_with(count: usize, tweak: impl Fn(&mut Config)) -> TestCluster {
    let upstream = FakeOpenAi::start().await;
    let database = cluster_database().await;
    let scratch = tempfile::tempdir().unwrap();
    let data = TestData {
        dir: scratch,
        database,
    };
    let mut config = test_config(&data, &upstream);
    config.nats_url = Some(nats_url());
    config.cluster.namespace = format!("test_{}", uuid::Uuid::new_v4().simple());
    config.cluster.lease_ttl_secs = 3;
    config.cluster.event_retention_secs = 120;
    tweak(&mut config);
    let TestData { dir, database } = data;
    let mut dirs = vec![dir];
    let mut nodes = Vec::new();
    for _ in 0..count {
        let dir = tempfile::tempdir().unwrap();
        let mut node_config = config.clone();
        node_config.data_dir = dir.path().to_path_buf();
        nodes.push(start_node(node_config, upstream.clone()).await);
        dirs.push(dir);
    }
    TestCluster {
        nodes,
        upstream,
        dirs,
        _database: database,
    }
}

pub async fn spawn_cluster(count: usize) -> TestCluster {
    spawn_cluster_with(count, |_| {}).await
}

impl TestCluster {
    /// Stop every node, then remove the cluster's stream and bucket.
    pub async fn finish(mut self) {
        let cluster = self
            .nodes
            .iter()
            .find_map(|node| node.state.cluster.clone())
            .expect("cluster mode");
        for node in &mut self.nodes {
            node.stop().await;
        }
        cluster.destroy().await.expect("stream and bucket removed");
        drop(self.dirs);
    }
}
