//! The embedded model end to end: the real SmolLM2 weights through the real
//! server socket. Needs `scripts/setup-models.sh` (or COLLOQUY_TEST_MODEL);
//! a missing model fails these tests rather than skipping them.

use std::path::PathBuf;

use serde_json::{json, Value};

use crate::helpers::{concat_deltas, send_text, spawn_app_with, test_config, TestApp};

fn model_path() -> PathBuf {
    let path = std::env::var_os("COLLOQUY_TEST_MODEL")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../../data/models/SmolLM2-135M-Instruct.Q4_1.gguf")
        });
    assert!(
        path.exists(),
        "{} is missing: run scripts/setup-models.sh",
        path.display()
    );
    path
}

async fn local_app(workers: usize, queue_capacity: usize) -> TestApp {
    spawn_app_with(|config| {
        config.model = Some("local".into());
        config.openai_base_url = None;
        config.local.model_path = Some(model_path());
        config.local.workers = workers;
        config.local.queue_capacity = queue_capacity;
        config.local.context_tokens = 1024;
        // Greedy decoding: the same answer on every run.
        config.local.temperature = 0.0;
        config.max_reply_tokens = 48;
    })
    .await
}

#[tokio::test]
async fn the_local_model_streams_a_reply_through_the_socket() {
    let app = local_app(1, 4).await;
    let token = app.register("local@example.com").await;
    let config = app.client_config().await;
    assert!(config["models"]["default"]
        .as_str()
        .unwrap()
        .starts_with("local:"));

    let (mut socket, _) = app.chat(&token, None).await;
    let ack = send_text(&mut socket, "What is the capital of France?", None).await;
    let events = socket.reply_events(ack["reply_id"].as_str().unwrap()).await;
    let deltas = events.iter().filter(|e| e["type"] == "delta").count();
    assert!(deltas >= 2, "streamed token by token: {events:?}");
    let last = events.last().unwrap();
    assert_eq!(last["status"], "complete");
    let reply = last["content"].as_str().unwrap();
    assert_eq!(reply, concat_deltas(&events));
    assert!(reply.contains("Paris"), "a coherent answer: {reply:?}");
}

#[tokio::test]
async fn stopping_the_local_model_mid_reply_stores_the_partial_reply_as_interrupted() {
    let app = spawn_app_with(|config| {
        config.model = Some("local".into());
        config.local.model_path = Some(model_path());
        config.local.workers = 1;
        config.max_reply_tokens = 400;
    })
    .await;
    let token = app.register("local-stop@example.com").await;
    let (mut socket, ready) = app.chat(&token, None).await;
    let ack = send_text(
        &mut socket,
        "Write a long story about a dragon and a knight.",
        None,
    )
    .await;
    let reply_id = ack["reply_id"].as_str().unwrap();
    let mut events = vec![socket.next_event().await, socket.next_event().await];
    socket.send_json(json!({ "type": "stop" })).await;
    events.extend(socket.reply_events(reply_id).await);
    let last = events.last().unwrap();
    assert_eq!(last["status"], "interrupted");
    assert_eq!(last["content"], concat_deltas(&events));
    let id = ready["conversation_id"].as_str().unwrap();
    let stored: Value = app.conversation(id, &token).await;
    assert_eq!(stored["messages"][1]["status"], "interrupted");
    assert_eq!(stored["messages"][1]["content"], last["content"]);
}

#[tokio::test]
async fn a_full_queue_answers_overloaded_and_keeps_the_message() {
    let app = local_app(1, 1).await;
    let token = app.register("local-queue@example.com").await;
    // Three conversations at once: one generating, one queued, one refused.
    let mut sockets = Vec::new();
    for _ in 0..3 {
        sockets.push(app.chat(&token, None).await.0);
    }
    let mut acks = Vec::new();
    for socket in &mut sockets {
        acks.push(send_text(socket, "Tell me about the sea.", None).await);
    }
    let mut statuses = Vec::new();
    let mut codes = Vec::new();
    for (socket, ack) in sockets.iter_mut().zip(&acks) {
        let events = socket.reply_events(ack["reply_id"].as_str().unwrap()).await;
        codes.extend(
            events
                .iter()
                .filter(|e| e["type"] == "error")
                .map(|e| e["code"].clone()),
        );
        statuses.push(events.last().unwrap()["status"].clone());
    }
    assert_eq!(
        codes,
        [json!("overloaded")],
        "exactly one refused: {statuses:?}"
    );
    assert_eq!(statuses.iter().filter(|s| *s == "complete").count(), 2);
}

#[tokio::test]
async fn a_missing_model_file_stops_the_start_with_the_path_and_the_fix() {
    let upstream = crate::fake_openai::FakeOpenAi::start().await;
    let data = crate::helpers::test_data().await;
    let mut config = test_config(&data, &upstream);
    config.model = Some("local".into());
    config.local.model_path = Some(data.dir.path().join("models/absent.gguf"));
    let error = match colloquy::App::build(config).await {
        Ok(_) => panic!("the server must not start without its model"),
        Err(error) => format!("{error:#}"),
    };
    assert!(error.contains("absent.gguf"), "{error}");
    assert!(error.contains("scripts/setup-models.sh"), "{error}");
}
