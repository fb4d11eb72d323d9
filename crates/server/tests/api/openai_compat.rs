//! The OpenAI-compatible endpoint over real HTTP: plain and streamed
//! completions from the configured model, nothing stored, the user's
//! message budget paid, and OpenAI-style errors.

use serde_json::{json, Value};

use crate::{
    fake_openai::Script,
    helpers::{spawn_app, spawn_app_with, TestApp},
};

async fn complete(app: &TestApp, token: &str, body: Value) -> reqwest::Response {
    app.post_json("/v1/chat/completions", token, body).await
}

#[tokio::test]
async fn a_plain_completion_comes_from_the_configured_model_and_stores_nothing() {
    let app = spawn_app().await;
    let token = app.register("sdk@example.com").await;
    let models: Value = app.get("/v1/models", &token).await.json().await.unwrap();
    assert_eq!(models["object"], "list");
    assert_eq!(models["data"][0]["id"], "openai:fake-model");

    app.upstream.push(Script::tokens(&["Forty", "-two"]));
    let response = complete(
        &app,
        &token,
        json!({
            "model": "openai:fake-model",
            "messages": [
                { "role": "system", "content": "Answer briefly." },
                { "role": "user", "content": [{ "type": "text", "text": "Six times seven?" }] },
            ],
            "max_tokens": 100000,
        }),
    )
    .await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["object"], "chat.completion");
    assert!(body["id"].as_str().unwrap().starts_with("chatcmpl-"));
    assert_eq!(body["model"], "openai:fake-model");
    assert_eq!(body["choices"][0]["message"]["role"], "assistant");
    assert_eq!(body["choices"][0]["message"]["content"], "Forty-two");
    assert_eq!(body["choices"][0]["finish_reason"], "stop");

    // The upstream got the caller's messages, and no more tokens than a reply may use.
    let sent = app.upstream.requests().pop().unwrap();
    assert_eq!(
        sent["messages"],
        json!([
            { "role": "system", "content": "Answer briefly." },
            { "role": "user", "content": "Six times seven?" },
        ])
    );
    assert_eq!(sent["max_tokens"], 1024);
    let listed: Value = app
        .get("/api/conversations", &token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(listed["conversations"], json!([]), "stateless");
}

#[tokio::test]
async fn a_streamed_completion_is_openai_chunks_then_done() {
    let app = spawn_app().await;
    let token = app.register("stream@example.com").await;
    app.upstream.push(Script::tokens(&["Hel", "lo"]));
    let response = complete(
        &app,
        &token,
        json!({
            "model": "openai:fake-model",
            "messages": [{ "role": "user", "content": "Hi" }],
            "stream": true,
            "stream_options": { "include_usage": true },
        }),
    )
    .await;
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    let text = response.text().await.unwrap();
    let data: Vec<&str> = text
        .lines()
        .filter_map(|line| line.strip_prefix("data: "))
        .collect();
    assert_eq!(data.last(), Some(&"[DONE]"));
    let chunks: Vec<Value> = data[..data.len() - 1]
        .iter()
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    assert!(chunks
        .iter()
        .all(|c| c["object"] == "chat.completion.chunk"));
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let said: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(said, "Hello");
    let finish: Vec<&Value> = chunks
        .iter()
        .map(|c| &c["choices"][0]["finish_reason"])
        .filter(|f| !f.is_null())
        .collect();
    assert_eq!(finish, [&json!("stop")]);
    assert!(
        chunks.last().unwrap()["usage"].is_object(),
        "usage asked for"
    );
}

#[tokio::test]
async fn bad_requests_get_openai_style_errors_and_the_budget_is_shared_with_chat() {
    let app = spawn_app_with(|config| config.messages_per_minute_per_user = 1).await;
    let token = app.register("limits@example.com").await;
    let hi = json!([{ "role": "user", "content": "Hi" }]);
    let unknown = complete(&app, &token, json!({ "model": "gpt-9", "messages": hi })).await;
    assert_eq!(unknown.status(), 400);
    let body: Value = unknown.json().await.unwrap();
    assert_eq!(body["error"]["code"], "model_not_found");
    assert!(body["error"]["message"].is_string());
    let role = complete(
        &app,
        &token,
        json!({ "model": "openai:fake-model", "messages": [{ "role": "wizard", "content": "x" }] }),
    )
    .await;
    assert_eq!(role.status(), 400);
    let unauthenticated = app
        .http
        .post(app.url("/v1/chat/completions"))
        .json(&json!({ "model": "openai:fake-model", "messages": hi }))
        .send()
        .await
        .unwrap();
    assert_eq!(unauthenticated.status(), 401);

    let ok = complete(
        &app,
        &token,
        json!({ "model": "openai:fake-model", "messages": hi }),
    )
    .await;
    assert_eq!(ok.status(), 200);
    let limited = complete(
        &app,
        &token,
        json!({ "model": "openai:fake-model", "messages": hi }),
    )
    .await;
    assert_eq!(limited.status(), 429);
}

#[tokio::test]
async fn a_streamed_completion_its_client_drops_is_still_metered() {
    let app = spawn_app().await;
    let token = app.register("leaver@example.com").await;
    app.upstream.push(Script::StallAfter(
        ["one", " two", " three"].map(String::from).to_vec(),
    ));
    let body = json!({
        "model": "openai:fake-model",
        "messages": [{ "role": "user", "content": "Count slowly, please" }],
        "stream": true,
    });
    let mut response = complete(&app, &token, body).await;
    assert_eq!(response.status(), 200);
    let mut received = String::new();
    while !received.contains("three") {
        let chunk = response.chunk().await.unwrap().expect("more chunks");
        received.push_str(&String::from_utf8_lossy(&chunk));
    }
    drop(response);

    let deadline = tokio::time::Instant::now() + crate::helpers::EVENT_WAIT;
    let today = loop {
        let report = crate::usage::usage(&app, &token, "").await;
        if let Some(day) = report["days"].as_array().unwrap().first() {
            break day.clone();
        }
        assert!(tokio::time::Instant::now() < deadline, "never metered");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    assert_eq!(today["messages"], 1, "{today}");
    assert!(today["prompt_tokens"].as_i64().unwrap() > 0, "{today}");
    // "one two three": 13 characters, about four a token, and overhead.
    assert!(today["completion_tokens"].as_i64().unwrap() >= 4, "{today}");
}
