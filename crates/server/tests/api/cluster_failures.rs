//! Cluster mode when a node goes away: killed (SIGKILL) mid-reply, its
//! conversation's lease expires and another node finishes the reply as
//! `interrupted` with what its clients saw; stopped (graceful), its sockets
//! close with 1012 and resume exactly on another node.

use std::time::Duration;

use serde_json::{json, Value};

use crate::{
    cluster_nodes::{cluster_database, nats_url},
    fake_openai::{FakeOpenAi, Script},
    helpers::{concat_deltas, send_text, seq, start_node, test_config, Socket, TestData},
    process_server::Server,
};

#[tokio::test]
async fn killing_the_node_running_a_reply_leaves_an_interrupted_final_within_the_lease_ttl() {
    let upstream = FakeOpenAi::start().await;
    upstream.push(Script::StallAfter(
        ["One", " two", " three", " four", " five"]
            .map(String::from)
            .to_vec(),
    ));
    let data = TestData {
        dir: tempfile::tempdir().unwrap(),
        database: cluster_database().await,
    };
    let namespace = format!("test_{}", uuid::Uuid::new_v4().simple());
    let lease_ttl_secs = 2;
    let cluster_env = [
        ("COLLOQUY_NATS_URL", nats_url()),
        ("COLLOQUY_CLUSTER__NAMESPACE", namespace.clone()),
        (
            "COLLOQUY_CLUSTER__LEASE_TTL_SECS",
            lease_ttl_secs.to_string(),
        ),
    ];
    let env: Vec<(&str, &str)> = cluster_env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let doomed = Server::start(data.dir.path(), &data.database.url, &upstream, &env);
    let survivor_dir = tempfile::tempdir().unwrap();
    let mut config = test_config(&data, &upstream);
    config.data_dir = survivor_dir.path().to_path_buf();
    config.nats_url = Some(nats_url());
    config.cluster.namespace = namespace;
    config.cluster.lease_ttl_secs = lease_ttl_secs;
    let mut survivor = start_node(config, upstream.clone()).await;

    let token = survivor.register("killed@example.com").await;
    let mut socket =
        Socket::connect(&doomed.ws_url(&format!("/api/v1/chat/ws?token={token}"))).await;
    let conversation = socket.next_event().await["conversation_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let ack = send_text(&mut socket, "count to five", Some("k-1")).await;
    let reply_id = ack["reply_id"].as_str().unwrap().to_owned();
    let mut seen = Vec::new();
    while seen.len() < 5 {
        let event = socket.next_event().await;
        if event["type"] == "delta" {
            seen.push(event);
        }
    }
    let last_seen = seq(seen.last().unwrap());
    let mut watcher = Socket::connect(&survivor.ws_url(&format!(
        "/api/v1/chat/ws?token={token}&conversationId={conversation}&last_seq={}",
        seq(&ack)
    )))
    .await;
    assert_eq!(watcher.next_event().await["type"], "ready");
    let replayed: Vec<Value> = {
        let mut events = Vec::new();
        while events.len() < 5 {
            events.push(watcher.next_event().await);
        }
        events
    };
    assert_eq!(
        replayed, seen,
        "the watcher on the other node saw the same deltas"
    );

    doomed.kill();
    drop(socket);
    let killed_at = std::time::Instant::now();
    let finished = watcher.next_event().await;
    let waited = killed_at.elapsed();
    assert_eq!(finished["type"], "message", "{finished}");
    assert_eq!(finished["message_id"], reply_id.as_str());
    assert_eq!(finished["status"], "interrupted");
    assert_eq!(finished["content"], concat_deltas(&seen).as_str());
    assert_eq!(
        seq(&finished),
        last_seen + 1,
        "numbering goes on from the last delta"
    );
    // The lease TTL, plus a sweep interval and the time to take over.
    assert!(
        waited < Duration::from_secs(lease_ttl_secs + 5),
        "finished {waited:?} after the kill"
    );

    // Stored: the acked question and the interrupted reply.
    let stored = survivor.conversation(&conversation, &token).await;
    let messages = stored["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 2, "{stored}");
    assert_eq!(messages[0]["id"], ack["message_id"]);
    assert_eq!(messages[1]["status"], "interrupted");

    // The killed node's client resumes on the survivor and gets the end once.
    let mut socket = Socket::connect(&survivor.ws_url(&format!(
        "/api/v1/chat/ws?token={token}&conversationId={conversation}&last_seq={last_seen}"
    )))
    .await;
    assert_eq!(socket.next_event().await["type"], "ready");
    assert_eq!(socket.next_event().await, finished);
    // And the conversation goes on, on the survivor.
    upstream.push(Script::tokens(&["still", " here"]));
    let next = send_text(&mut socket, "still there?", Some("k-2")).await;
    assert_eq!(seq(&next), seq(&finished) + 1);
    let reply = socket
        .reply_events(next["reply_id"].as_str().unwrap())
        .await;
    assert_eq!(reply.last().unwrap()["content"], "still here");

    let cluster = survivor.state.cluster.clone().expect("cluster mode");
    survivor.stop().await;
    cluster.destroy().await.expect("stream and bucket removed");
}

#[tokio::test]
async fn a_stopped_node_closes_with_1012_and_its_clients_resume_exactly_elsewhere() {
    let mut cluster = crate::cluster_nodes::spawn_cluster(2).await;
    let token = cluster.nodes[0].register("stopped@example.com").await;
    let (mut socket, ready) = cluster.nodes[0].chat(&token, None).await;
    let conversation = ready["conversation_id"].as_str().unwrap().to_owned();
    cluster.upstream.push(Script::slow(
        &[" a", " b", " c", " d", " e", " f", " g", " h"],
        Duration::from_millis(40),
    ));
    let ack = send_text(&mut socket, "go on", Some("s-1")).await;
    let reply_id = ack["reply_id"].as_str().unwrap().to_owned();
    let first_delta = socket.next_event().await;
    let mut last_seen = seq(&first_delta);

    // Stop node one while its reply streams: it finishes the reply first.
    let mut stopping = cluster.nodes.remove(0);
    let stopped = tokio::spawn(async move {
        stopping.stop().await;
        stopping
    });
    let closed = loop {
        match socket.next_event_or_close().await {
            Ok(event) => last_seen = seq(&event).max(last_seen),
            Err(closed) => break closed,
        }
    };
    assert_eq!(closed.code, Some(1012), "{closed:?}");
    drop(stopped.await.unwrap());

    let second = &cluster.nodes[0];
    let mut socket = Socket::connect(&second.ws_url(&format!(
        "/api/v1/chat/ws?token={token}&conversationId={conversation}&last_seq={last_seen}"
    )))
    .await;
    let ready = socket.next_event().await;
    assert_eq!(ready["type"], "ready");
    assert_eq!(
        ready["last_seq"].as_u64(),
        Some(last_seen),
        "nothing was missed"
    );
    cluster
        .upstream
        .push(Script::tokens(&["after", " restart"]));
    socket
        .send_json(json!({ "type": "text", "content": "and now?", "client_id": "s-2" }))
        .await;
    let next = socket.next_event().await;
    assert_eq!(next["type"], "ack", "{next}");
    assert_eq!(seq(&next), last_seen + 1);
    let stored = second.conversation(&conversation, &token).await;
    assert_eq!(stored["messages"][1]["id"], reply_id.as_str());
    assert_eq!(stored["messages"][1]["status"], "complete");
    cluster.finish().await;
}

/// A NATS server of this test's own (so it can be stopped without
/// touching anyone else's), with JetStream, on a fixed loopback port.
struct PrivateNats {
    child: Option<std::process::Child>,
    port: u16,
    store: tempfile::TempDir,
}

impl PrivateNats {
    fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut nats = Self {
            child: None,
            port,
            store: tempfile::tempdir().unwrap(),
        };
        nats.restart();
        nats
    }

    fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    fn binary() -> String {
        [
            "/usr/sbin/nats-server",
            "/usr/bin/nats-server",
            "/usr/local/bin/nats-server",
        ]
        .into_iter()
        .find(|path| std::path::Path::new(path).exists())
        .unwrap_or("nats-server")
        .to_owned()
    }

    /// Start it (again, on the same port and store) and wait until it listens.
    fn restart(&mut self) {
        let child = std::process::Command::new(Self::binary())
            .args([
                "-a",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-js",
                "-sd",
            ])
            .arg(self.store.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("nats-server starts (the test command installs it)");
        self.child = Some(child);
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("nats-server did not listen on {}", self.port);
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for PrivateNats {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Poll `/healthz` until its `status` is `want` (at most ~15 s).
async fn wait_for_health(node: &crate::helpers::TestApp, want: &str) {
    for _ in 0..150 {
        let health: Value = node
            .http
            .get(node.url("/healthz"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if health["status"] == want {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("/healthz never said {want}");
}

#[tokio::test]
async fn nats_going_away_degrades_the_nodes_and_they_recover_when_it_returns() {
    let mut nats = PrivateNats::start();
    let url = nats.url();
    let cluster =
        crate::cluster_nodes::spawn_cluster_with(2, |config| config.nats_url = Some(url.clone()))
            .await;
    let (first, second) = (&cluster.nodes[0], &cluster.nodes[1]);
    let token = first.register("outage@example.com").await;
    let (mut socket, ready) = first.chat(&token, None).await;
    let conversation = ready["conversation_id"].as_str().unwrap().to_owned();
    let ack = send_text(&mut socket, "before", Some("n-1")).await;
    socket.reply_events(ack["reply_id"].as_str().unwrap()).await;
    let mut watcher = Socket::connect(&second.ws_url(&format!(
        "/api/v1/chat/ws?token={token}&conversationId={conversation}"
    )))
    .await;
    assert_eq!(watcher.next_event().await["type"], "ready");

    nats.kill();
    wait_for_health(first, "degraded").await;
    socket
        .send_json(json!({ "type": "text", "content": "during", "client_id": "n-2" }))
        .await;
    let refused = socket.next_error().await;
    assert_eq!(refused["code"], "unavailable", "{refused}");

    nats.restart();
    wait_for_health(first, "ok").await;
    wait_for_health(second, "ok").await;
    // The message is sent again, as a client does after `unavailable`.
    let mut accepted = None;
    for _ in 0..50 {
        socket
            .send_json(json!({ "type": "text", "content": "after", "client_id": "n-3" }))
            .await;
        let event = socket.next_event().await;
        if event["type"] == "ack" {
            accepted = Some(event);
            break;
        }
        assert_eq!(event["code"], "unavailable", "{event}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let ack = accepted.expect("accepted once NATS is back");
    let reply_id = ack["reply_id"].as_str().unwrap();
    let sent = socket.reply_events(reply_id).await;
    // The watcher on the other node gets the same events again.
    let watched = watcher.reply_events(reply_id).await;
    let watched_from_ack: Vec<Value> = watched
        .iter()
        .skip_while(|event| event["message_id"] != ack["message_id"])
        .skip(1)
        .cloned()
        .collect();
    assert_eq!(watched_from_ack, sent);
    cluster.finish().await;
}
