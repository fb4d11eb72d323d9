//! Several models (`[[models]]`): `/api/config` lists them, a message picks
//! one by id (socket and HTTP), and an unknown id is refused before anything
//! is stored.

use colloquy::config::ModelEntry;
use serde_json::json;

use crate::{
    fake_openai::{FakeOpenAi, Script},
    helpers::{spawn_app, spawn_app_with, TestApp},
};

/// The test server with a second upstream offered as model `second`.
async fn two_models() -> (TestApp, FakeOpenAi) {
    let second = FakeOpenAi::start().await;
    let url = second.base_url();
    let app = spawn_app_with(|config| {
        config.models = vec![ModelEntry {
            id: Some("second".into()),
            name: Some("Second model".into()),
            model: "openai:second-model".into(),
            base_url: Some(url),
            api_key_env: None,
        }];
    })
    .await;
    (app, second)
}

#[tokio::test]
async fn config_lists_the_default_model_first_then_the_configured_ones() {
    let (app, _second) = two_models().await;
    let config = app.client_config().await;
    let ids: Vec<&str> = config["models"]["available"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["openai:fake-model", "second"]);
    assert_eq!(config["models"]["default"], "openai:fake-model");
    assert_eq!(config["models"]["available"][1]["name"], "Second model");
}

#[tokio::test]
async fn a_single_model_server_lists_only_its_model() {
    let app = spawn_app().await;
    let config = app.client_config().await;
    assert_eq!(config["models"]["available"].as_array().unwrap().len(), 1);
    assert_eq!(config["models"]["default"], "openai:fake-model");
}

#[tokio::test]
async fn a_message_naming_a_model_is_answered_by_that_model_and_others_by_the_default() {
    let (app, second) = two_models().await;
    second.push(Script::tokens(&["from", " second"]));
    app.upstream.push(Script::tokens(&["from", " default"]));
    let token = app.register("picker@example.com").await;
    let (mut socket, _) = app.chat(&token, None).await;

    socket
        .send_json(
            json!({ "type": "text", "content": "Hi", "client_id": "p-1", "model": "second" }),
        )
        .await;
    let reply = final_reply(&mut socket).await;
    assert_eq!(reply, "from second");
    assert_eq!(second.requests().len(), 1);
    assert_eq!(second.requests()[0]["model"], "second-model");
    assert!(app.upstream.requests().is_empty());

    socket
        .send_json(json!({ "type": "text", "content": "Again", "client_id": "p-2" }))
        .await;
    assert_eq!(final_reply(&mut socket).await, "from default");
    assert_eq!(second.requests().len(), 1);
}

#[tokio::test]
async fn an_unknown_model_is_refused_with_its_client_id_and_nothing_is_stored() {
    let (app, second) = two_models().await;
    let token = app.register("unknown@example.com").await;
    let (mut socket, _) = app.chat(&token, None).await;
    socket
        .send_json(
            json!({ "type": "text", "content": "Hi", "client_id": "u-1", "model": "gpt-99" }),
        )
        .await;
    let error = socket.next_event().await;
    assert_eq!(error["type"], "error", "{error}");
    assert_eq!(error["code"], "unknown_model");
    assert_eq!(error["client_id"], "u-1");
    assert!(!error["message"].as_str().unwrap().contains("gpt-99"));
    // Not even the new conversation: it is stored only with an accepted message.
    assert!(app.conversations(&token).await.is_empty());
    assert!(second.requests().is_empty() && app.upstream.requests().is_empty());

    // Over HTTP: a 400 with the same code.
    let response = app
        .post_json(
            "/api/messages",
            &token,
            json!({ "content": "Hi", "model": "gpt-99" }),
        )
        .await;
    assert_eq!(response.status(), 400);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unknown_model");
}

#[tokio::test]
async fn http_messages_pick_a_model_too() {
    let (app, second) = two_models().await;
    second.push(Script::tokens(&["second", " over", " HTTP"]));
    let token = app.register("http-picker@example.com").await;
    let response = app
        .post_json(
            "/api/messages",
            &token,
            json!({ "content": "Hi", "model": "second" }),
        )
        .await;
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(
        body["assistant_message"]["content"], "second over HTTP",
        "{body}"
    );
}

/// The content of the next final `message` on the socket.
async fn final_reply(socket: &mut crate::helpers::Socket) -> String {
    loop {
        let event = socket.next_event().await;
        assert_ne!(event["type"], "error", "unexpected error: {event}");
        if event["type"] == "message" && event["is_final"] == true {
            return event["content"].as_str().unwrap().to_owned();
        }
    }
}
