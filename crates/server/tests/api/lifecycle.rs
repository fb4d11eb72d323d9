use std::time::Duration;

use serde_json::Value;

use crate::{
    fake_openai::Script,
    helpers::{send_text, spawn_app, spawn_app_with, Socket},
};

#[tokio::test]
async fn conversations_survive_a_restart_and_numbering_continues() {
    let app = spawn_app().await;
    let token = app.register("restart@example.com").await;
    let (mut socket, ready) = app.chat(&token, None).await;
    let id = ready["conversation_id"].as_str().unwrap().to_owned();
    let ack = send_text(&mut socket, "remember me", None).await;
    let events = socket.reply_events(ack["reply_id"].as_str().unwrap()).await;
    let last_seq = events.last().unwrap()["seq"].as_u64().unwrap();
    drop(socket);

    let app = app.restart().await;
    let stored: Value = app.conversation(&id, &token).await;
    let messages = stored["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 2);
    assert_eq!(messages[0]["content"], "remember me");
    assert_eq!(messages[0]["sender"], "user");
    assert_eq!(messages[1]["sender"], "assistant");
    assert_eq!(messages[1]["content"], "Hello from the fake.");

    let (mut socket, ready) = app.chat(&token, Some(&id)).await;
    assert_eq!(ready["last_seq"].as_u64().unwrap(), last_seq);
    let ack = send_text(&mut socket, "still here?", None).await;
    assert_eq!(ack["seq"].as_u64().unwrap(), last_seq + 1);
}

#[tokio::test]
async fn shutdown_stores_a_reply_still_running_after_the_grace_period_as_interrupted() {
    let mut app = spawn_app_with(|config| config.shutdown_grace_secs = 0).await;
    let tokens: Vec<String> = (0..500).map(|i| format!(" t{i}")).collect();
    let refs: Vec<&str> = tokens.iter().map(String::as_str).collect();
    app.upstream
        .push(Script::slow(&refs, Duration::from_millis(20)));
    let token = app.register("shutdown@example.com").await;
    let (mut socket, ready) = app.chat(&token, None).await;
    let id = ready["conversation_id"].as_str().unwrap().to_owned();
    let ack = send_text(&mut socket, "long one", None).await;
    let first = socket.next_event().await;
    assert_eq!(first["type"], "delta");

    app.stop().await;
    // The socket saw the interrupted reply, then a 1012 close.
    let mut events = vec![first];
    let closed = loop {
        let closed_or_event = tokio::time::timeout(Duration::from_secs(10), async {
            socket.next_event_or_close().await
        })
        .await
        .unwrap();
        match closed_or_event {
            Ok(event) => events.push(event),
            Err(closed) => break closed,
        }
    };
    assert_eq!(closed.code, Some(1012));
    let last = events
        .iter()
        .rev()
        .find(|e| e["type"] == "message")
        .expect("final message");
    assert_eq!(last["message_id"], ack["reply_id"]);
    assert_eq!(last["status"], "interrupted");

    let app = app.restart().await;
    let stored: Value = app.conversation(id, &token).await;
    assert_eq!(stored["messages"][1]["status"], "interrupted");
    assert_eq!(stored["messages"][1]["content"], last["content"]);
}

#[tokio::test]
async fn a_silent_socket_is_dropped_after_the_heartbeat_timeout_and_nothing_leaks() {
    let app = spawn_app_with(|config| {
        config.heartbeat_interval_secs = 1;
        config.heartbeat_timeout_secs = 2;
    })
    .await;
    let token = app.register("silent@example.com").await;
    let mut socket = Socket::connect(&app.ws_url(&format!("/api/v1/chat/ws?token={token}"))).await;
    // Not reading means not answering pings: to the server this peer is dead.
    tokio::time::sleep(Duration::from_millis(3500)).await;
    let closed = socket.closed().await;
    assert_eq!(closed.code, Some(1001));
    assert_eq!(closed.reason, "heartbeat timeout");
    assert_eq!(app.state.hub.live_channels(), 0);
}

#[tokio::test]
async fn an_active_socket_survives_heartbeats() {
    let app = spawn_app_with(|config| {
        config.heartbeat_interval_secs = 1;
        config.heartbeat_timeout_secs = 2;
    })
    .await;
    app.upstream.push(Script::tokens(&["alive"]));
    let token = app.register("alive@example.com").await;
    let (mut socket, _) = app.chat(&token, None).await;
    // Reading answers the server's pings (the client library replies with pongs).
    let waited = tokio::time::timeout(Duration::from_millis(3500), socket.next_event()).await;
    assert!(waited.is_err(), "no event expected while idle");
    let ack = send_text(&mut socket, "still there", None).await;
    let events = socket.reply_events(ack["reply_id"].as_str().unwrap()).await;
    assert_eq!(events.last().unwrap()["content"], "alive");
    drop(socket);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        app.state.hub.live_channels(),
        0,
        "channel retired when its socket left"
    );
}

#[tokio::test]
async fn a_reply_left_unfinished_by_a_crash_is_stored_as_interrupted_at_the_next_start() {
    use colloquy::store::{self, NewMessage};
    use colloquy_protocol::{MessageStatus, Sender};

    let app = spawn_app().await;
    let token = app.register("crash@example.com").await;
    // Stored at once (a socket's new conversation waits for its first message).
    let created: Value = app
        .post_json("/api/conversations", &token, serde_json::json!({}))
        .await
        .json()
        .await
        .unwrap();
    let id: uuid::Uuid = created["id"].as_str().unwrap().parse().unwrap();
    // What a crash between the ack and the reply leaves behind.
    let reply_id = uuid::Uuid::now_v7();
    store::insert_message(
        &app.state.db,
        NewMessage {
            id: uuid::Uuid::now_v7(),
            conversation_id: id,
            sender: Sender::User,
            content: "was anyone there?".into(),
            status: MessageStatus::Complete,
            seq: 1,
            client_id: None,
            reply_id: Some(reply_id),
            error_code: None,
            parent: store::Parent::ActiveLeaf,
            activate: Some(reply_id),
        },
    )
    .await
    .unwrap();

    let app = app.restart().await;
    let stored: Value = app.conversation(id, &token).await;
    let messages = stored["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 2);
    assert_eq!(messages[1]["id"], reply_id.to_string());
    assert_eq!(messages[1]["status"], "interrupted");
    assert_eq!(messages[1]["seq"], 2);
}
