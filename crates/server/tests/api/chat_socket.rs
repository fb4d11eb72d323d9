use std::time::Duration;

use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

use crate::{
    fake_openai::Script,
    helpers::{concat_deltas, send_text, spawn_app, Socket},
};

fn seq(event: &Value) -> u64 {
    event["seq"]
        .as_u64()
        .unwrap_or_else(|| panic!("no seq in {event}"))
}

#[tokio::test]
async fn a_full_turn_streams_deltas_in_order_and_ends_with_the_whole_reply() {
    let app = spawn_app().await;
    app.upstream
        .push(Script::tokens(&["The", " sky", " is", " blue", "."]));
    let token = app.register("turn@example.com").await;
    let (mut socket, ready) = app.chat(&token, None).await;
    assert_eq!(ready["last_seq"], 0);

    let ack = send_text(&mut socket, "What colour is the sky?", Some("c-1")).await;
    assert_eq!(ack["client_id"], "c-1");
    assert_eq!(seq(&ack), 1);
    let reply_id = ack["reply_id"].as_str().unwrap();
    let events = socket.reply_events(reply_id).await;

    let deltas: Vec<&str> = events
        .iter()
        .filter(|e| e["type"] == "delta")
        .map(|e| e["content"].as_str().unwrap())
        .collect();
    assert_eq!(deltas, ["The", " sky", " is", " blue", "."]);
    let last = events.last().unwrap();
    assert_eq!(last["is_final"], true);
    assert_eq!(last["status"], "complete");
    assert_eq!(last["content"], concat_deltas(&events));
    // Every event of the conversation is numbered one after the other.
    let seqs: Vec<u64> = events.iter().map(seq).collect();
    let expected: Vec<u64> = (2..2 + events.len() as u64).collect();
    assert_eq!(seqs, expected);

    // The model saw the system instruction and the user message.
    let request = &app.upstream.requests()[0];
    assert_eq!(request["model"], "fake-model");
    assert_eq!(request["messages"][0]["role"], "system");
    assert_eq!(request["messages"][1]["content"], "What colour is the sky?");
}

#[tokio::test]
async fn the_second_turn_sends_the_history_to_the_model() {
    let app = spawn_app().await;
    let token = app.register("history@example.com").await;
    let (mut socket, _) = app.chat(&token, None).await;
    app.upstream.push(Script::tokens(&["Hi", " Ada"]));
    let ack = send_text(&mut socket, "I am Ada", None).await;
    socket.reply_events(ack["reply_id"].as_str().unwrap()).await;
    let ack = send_text(&mut socket, "Who am I?", None).await;
    socket.reply_events(ack["reply_id"].as_str().unwrap()).await;
    let second = &app.upstream.requests()[1];
    let contents: Vec<&str> = second["messages"]
        .as_array()
        .unwrap()
        .iter()
        .skip(1)
        .map(|m| m["content"].as_str().unwrap())
        .collect();
    assert_eq!(contents, ["I am Ada", "Hi Ada", "Who am I?"]);
}

#[tokio::test]
async fn a_resend_with_the_same_client_id_is_stored_and_answered_once() {
    let app = spawn_app().await;
    let token = app.register("idem@example.com").await;
    let (mut socket, ready) = app.chat(&token, None).await;
    let id = ready["conversation_id"].as_str().unwrap().to_owned();
    let first = send_text(&mut socket, "only once", Some("same")).await;
    socket
        .reply_events(first["reply_id"].as_str().unwrap())
        .await;

    let again = send_text(&mut socket, "only once", Some("same")).await;
    assert_eq!(again["message_id"], first["message_id"]);
    assert_eq!(again["seq"], first["seq"]);
    // No second reply: a ping is answered next, with nothing in between.
    socket.send_json(json!({ "type": "ping" })).await;
    assert_eq!(socket.next_event().await["type"], "pong");

    let conversation: Value = app.conversation(id, &token).await;
    let messages = conversation["messages"].as_array().unwrap();
    assert_eq!(
        messages.len(),
        2,
        "one user message and one reply: {messages:?}"
    );
    assert_eq!(app.upstream.requests().len(), 1);
}

#[tokio::test]
async fn stop_mid_reply_ends_it_and_stores_what_was_said_as_interrupted() {
    let app = spawn_app().await;
    let tokens: Vec<String> = (0..200).map(|i| format!(" w{i}")).collect();
    let token_refs: Vec<&str> = tokens.iter().map(String::as_str).collect();
    app.upstream
        .push(Script::slow(&token_refs, Duration::from_millis(20)));
    let token = app.register("stop@example.com").await;
    let (mut socket, ready) = app.chat(&token, None).await;
    let ack = send_text(&mut socket, "talk for a long time", None).await;
    let reply_id = ack["reply_id"].as_str().unwrap();
    // Wait for a few deltas, then stop.
    let mut seen = Vec::new();
    while seen.len() < 3 {
        seen.push(socket.next_event().await);
    }
    socket.send_json(json!({ "type": "stop" })).await;
    let mut events = seen;
    events.extend(socket.reply_events(reply_id).await);
    let last = events.last().unwrap();
    assert_eq!(last["status"], "interrupted");
    assert_eq!(last["content"], concat_deltas(&events));
    assert!(events.len() < 100, "stopped well before the end");

    let id = ready["conversation_id"].as_str().unwrap();
    let stored: Value = app.conversation(id, &token).await;
    let reply = &stored["messages"][1];
    assert_eq!(reply["status"], "interrupted");
    assert_eq!(reply["content"], last["content"]);
}

#[tokio::test]
async fn an_upstream_500_gives_an_error_event_and_the_socket_keeps_working() {
    let app = spawn_app().await;
    app.upstream.push(Script::Status(500));
    let token = app.register("fail@example.com").await;
    let (mut socket, ready) = app.chat(&token, None).await;
    let ack = send_text(&mut socket, "hello?", None).await;
    let events = socket.reply_events(ack["reply_id"].as_str().unwrap()).await;
    let error = events
        .iter()
        .find(|e| e["type"] == "error")
        .expect("an error event");
    assert_eq!(error["code"], "provider_error");
    assert_eq!(error["message_id"], ack["reply_id"]);
    assert!(
        !error["message"].as_str().unwrap().contains("scripted"),
        "upstream text is not leaked"
    );
    assert_eq!(events.last().unwrap()["status"], "error");

    // The socket stays open and the next message gets a normal reply.
    let ack = send_text(&mut socket, "try again", None).await;
    let events = socket.reply_events(ack["reply_id"].as_str().unwrap()).await;
    assert_eq!(events.last().unwrap()["status"], "complete");

    let id = ready["conversation_id"].as_str().unwrap();
    let stored: Value = app.conversation(id, &token).await;
    let statuses: Vec<&str> = stored["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["complete", "error", "complete", "complete"]);
}

#[tokio::test]
async fn an_upstream_that_stalls_mid_reply_times_out_and_keeps_the_partial_reply() {
    let app = spawn_app().await;
    app.upstream
        .push(Script::StallAfter(vec!["Part".into(), "ial".into()]));
    let token = app.register("stall@example.com").await;
    let (mut socket, ready) = app.chat(&token, None).await;
    let ack = send_text(&mut socket, "hello?", None).await;
    let events = socket.reply_events(ack["reply_id"].as_str().unwrap()).await;
    let error = events
        .iter()
        .find(|e| e["type"] == "error")
        .expect("an error event");
    assert_eq!(error["code"], "provider_timeout");
    let last = events.last().unwrap();
    assert_eq!(last["status"], "error");
    assert_eq!(last["content"], "Partial");

    let id = ready["conversation_id"].as_str().unwrap();
    let stored: Value = app.conversation(id, &token).await;
    assert_eq!(stored["messages"][1]["content"], "Partial");
    assert_eq!(stored["messages"][1]["status"], "error");
}

#[tokio::test]
async fn bad_frames_get_error_events_and_lose_nothing() {
    let app = spawn_app_limited().await;
    let token = app.register("frames@example.com").await;
    let (mut socket, _) = app.chat(&token, None).await;

    socket.send_raw(Message::Text("{not json".into())).await;
    assert_eq!(socket.next_event().await["code"], "invalid_event");
    socket.send_json(json!({ "type": "launch" })).await;
    assert_eq!(socket.next_event().await["code"], "invalid_event");
    socket
        .send_json(json!({ "type": "text", "content": "   " }))
        .await;
    assert_eq!(socket.next_event().await["code"], "empty_message");
    socket
        .send_json(json!({ "type": "text", "content": "x".repeat(101) }))
        .await;
    assert_eq!(socket.next_event().await["code"], "message_too_long");
    socket.send_raw(Message::Binary(vec![1, 2, 3].into())).await;
    assert_eq!(socket.next_event().await["code"], "unsupported_frame");

    // Still usable afterwards.
    let ack = send_text(&mut socket, "fine now", None).await;
    assert_eq!(ack["seq"], 1, "refused input consumed no seq");
}

async fn spawn_app_limited() -> crate::helpers::TestApp {
    crate::helpers::spawn_app_with(|config| config.max_message_chars = 100).await
}

#[tokio::test]
async fn a_socket_cannot_open_another_users_conversation() {
    let app = spawn_app().await;
    let owner = app.register("owner@example.com").await;
    let intruder = app.register("intruder@example.com").await;
    let (_, ready) = app.chat(&owner, None).await;
    let id = ready["conversation_id"].as_str().unwrap();
    for path in [
        format!("/api/v1/chat/ws?token={intruder}&conversationId={id}"),
        format!("/v2/chat/{id}?token={intruder}"),
    ] {
        let mut socket = Socket::connect(&app.ws_url(&path)).await;
        let closed = socket.closed().await;
        assert_eq!(closed.code, Some(1008), "{path}");
        assert_eq!(closed.reason, "Conversation not found", "{path}");
    }
    let mut socket = Socket::connect(&app.ws_url(&format!(
        "/api/v1/chat/ws?token={owner}&conversationId=nope"
    )))
    .await;
    assert_eq!(socket.closed().await.reason, "Invalid conversationId");
}

#[tokio::test]
async fn the_v2_socket_uses_the_session_id_as_the_conversation() {
    let app = spawn_app().await;
    let token = app.register("v2@example.com").await;
    let session = "0193a1b2-0000-7000-8000-000000000042";
    let mut socket =
        Socket::connect(&app.ws_url(&format!("/v2/chat/{session}?token={token}"))).await;
    let ready = socket.next_event().await;
    assert_eq!(ready["conversation_id"], session);
    let ack = send_text(&mut socket, "hello v2", None).await;
    let events = socket.reply_events(ack["reply_id"].as_str().unwrap()).await;
    assert_eq!(events.last().unwrap()["is_final"], true);
    let stored = app
        .get(&format!("/api/conversations/{session}"), &token)
        .await;
    assert_eq!(stored.status(), 200);
}

#[tokio::test]
async fn two_sockets_on_one_conversation_both_see_the_turn() {
    let app = spawn_app().await;
    let token = app.register("tabs@example.com").await;
    let (mut first, ready) = app.chat(&token, None).await;
    let id = ready["conversation_id"].as_str().unwrap().to_owned();
    let (mut second, _) = app.chat(&token, Some(&id)).await;
    let ack = send_text(&mut first, "seen twice", None).await;
    let reply_id = ack["reply_id"].as_str().unwrap();
    let on_first = first.reply_events(reply_id).await;
    let mut on_second = vec![second.next_event().await];
    on_second.extend(second.reply_events(reply_id).await);
    assert_eq!(on_second[0]["type"], "ack");
    assert_eq!(on_second[0]["content"], "seen twice");
    assert_eq!(on_first, on_second[1..]);
}
