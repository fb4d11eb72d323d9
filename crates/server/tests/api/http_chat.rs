use serde_json::{json, Value};

use crate::{
    fake_openai::Script,
    helpers::{spawn_app, spawn_app_with, sse_events},
};

#[tokio::test]
async fn post_messages_returns_the_complete_reply_and_stores_both() {
    let app = spawn_app().await;
    app.upstream
        .push(Script::tokens(&["Plain", " HTTP", " works"]));
    let token = app.register("http@example.com").await;
    let response = app
        .post_json(
            "/api/messages",
            &token,
            json!({ "content": "no sockets here", "client_id": "h-1" }),
        )
        .await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["assistant_message"]["content"], "Plain HTTP works");
    assert_eq!(body["assistant_message"]["status"], "complete");
    let id = body["conversation_id"].as_str().unwrap();

    // Idempotent over HTTP too.
    let again: Value = app
        .post_json(
            "/api/messages",
            &token,
            json!({ "conversation_id": id, "content": "no sockets here", "client_id": "h-1" }),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(again["duplicate"], true);
    assert_eq!(
        again["assistant_message"]["id"],
        body["assistant_message"]["id"]
    );

    let stored: Value = app.conversation(id, &token).await;
    assert_eq!(stored["messages"].as_array().unwrap().len(), 2);
    assert_eq!(stored["title"], "no sockets here");
}

#[tokio::test]
async fn v2_chat_streams_server_sent_events_when_asked() {
    let app = spawn_app().await;
    app.upstream.push(Script::tokens(&["S", "S", "E"]));
    let token = app.register("sse@example.com").await;
    let response = app
        .http
        .post(app.url("/v2/chat"))
        .bearer_auth(&token)
        .header("Accept", "text/event-stream")
        .json(&json!({ "message": "stream please" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    let (events, body) = sse_events(response).await;
    let kinds: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        ["ready", "ack", "delta", "delta", "delta", "message"]
    );
    assert_eq!(events[5]["content"], "SSE");
    assert_eq!(events[5]["is_final"], true);
    assert!(body.contains("event: delta"));
}

#[tokio::test]
async fn v2_chat_answers_json_without_an_event_stream_accept_header() {
    let app = spawn_app().await;
    let token = app.register("v2json@example.com").await;
    let response = app
        .post_json("/v2/chat", &token, json!({ "content": "json please" }))
        .await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["assistant_message"]["content"], "Hello from the fake.");
}

#[tokio::test]
async fn http_errors_from_the_provider_keep_the_user_message() {
    let app = spawn_app().await;
    app.upstream.push(Script::Status(503));
    let token = app.register("httperr@example.com").await;
    let response = app
        .post_json(
            "/api/messages",
            &token,
            json!({ "content": "are you there" }),
        )
        .await;
    assert_eq!(response.status(), 502);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "provider_error");
    let id = body["conversation_id"].as_str().unwrap();
    let stored: Value = app.conversation(id, &token).await;
    assert_eq!(stored["messages"][0]["content"], "are you there");
}

#[tokio::test]
async fn without_a_model_messages_are_stored_and_answered_with_no_model() {
    let app = spawn_app_with(|config| config.model = Some("none".into())).await;
    let token = app.register("nomodel@example.com").await;
    let response = app
        .post_json("/api/messages", &token, json!({ "content": "anyone?" }))
        .await;
    assert_eq!(response.status(), 503);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "no_model");

    let (mut socket, _) = app.chat(&token, None).await;
    let ack = crate::helpers::send_text(&mut socket, "hello?", None).await;
    let events = socket.reply_events(ack["reply_id"].as_str().unwrap()).await;
    assert_eq!(events[0]["type"], "error");
    assert_eq!(events[0]["code"], "no_model");
    let config = app.client_config().await;
    assert_eq!(config["models"]["available"].as_array().unwrap().len(), 0);
}

#[tokio::test]
async fn api_config_tells_a_client_how_to_boot() {
    let app = spawn_app().await;
    let config = app.client_config().await;
    assert_eq!(
        config["websocket"]["chat_url"],
        format!("ws://{}/api/v1/chat/ws", app.addr)
    );
    assert_eq!(config["models"]["default"], "openai:fake-model");
    assert!(config["limits"]["max_message_chars"].as_u64().unwrap() > 0);
    assert!(config["auth"]["modes"]
        .as_array()
        .unwrap()
        .contains(&json!("anonymous")));
}
