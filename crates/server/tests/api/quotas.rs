//! Daily quotas end to end: a turn over its plan's quota is refused before
//! anything is stored or generated, on every transport, with the plan, the
//! limit and when it resets; the next UTC day (the server's clock moved by
//! the test) lets it through again. Models outside the plan are refused.

use colloquy::config::PlanConfig;
use serde_json::{json, Value};

use crate::{
    helpers::{send_text, spawn_app_with, TestApp},
    usage::{chat_turn, model, usage},
};

/// A server whose `free` plan allows `messages` replies a day.
async fn app_with_free_plan(plan: PlanConfig) -> TestApp {
    spawn_app_with(move |config| {
        config.plans.insert("free".into(), plan);
    })
    .await
}

fn messages_per_day(max: u64) -> PlanConfig {
    PlanConfig {
        messages_per_day: Some(max),
        ..PlanConfig::default()
    }
}

/// The fields every refusal carries, on sockets and in HTTP bodies.
fn assert_quota_fields(error: &Value, limit: &str, max: u64, resets_at: &str) {
    assert_eq!(error["code"], "quota_exceeded", "{error}");
    assert_eq!(error["plan"], "free");
    assert_eq!(error["limit"], limit);
    assert_eq!(error["max"], max);
    assert_eq!(error["resets_at"], resets_at);
    assert_eq!(error["upgrade"], true);
    assert!(!error["message"].as_str().unwrap().is_empty());
}

/// The next UTC midnight by the server's clock, as the API writes it.
fn next_midnight(app: &TestApp) -> String {
    app.state
        .billing
        .resets_at()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

#[tokio::test]
async fn a_turn_over_quota_is_refused_on_every_transport_until_the_next_utc_day() {
    let app = app_with_free_plan(messages_per_day(2)).await;
    let token = app.register("ada@example.com").await;
    chat_turn(&app, &token, "one").await;
    chat_turn(&app, &token, "two").await;
    let asked = app.upstream.requests().len();
    let resets_at = next_midnight(&app);

    // The chat socket: an `error` for the refused text, no ack.
    let (mut socket, _) = app.chat(&token, None).await;
    socket
        .send_json(json!({ "type": "text", "content": "three", "client_id": "c-3" }))
        .await;
    let error = socket.next_event().await;
    assert_eq!(error["type"], "error", "{error}");
    assert_eq!(error["client_id"], "c-3");
    assert_quota_fields(&error, "messages_per_day", 2, &resets_at);
    assert_eq!(error["used"], 2);

    // Every HTTP transport: 429 with the same fields.
    let completion =
        json!({ "model": model(&app), "messages": [{ "role": "user", "content": "hi" }] });
    for (path, body) in [
        ("/api/messages", json!({ "content": "three" })),
        ("/v2/chat", json!({ "content": "three" })),
        ("/v1/chat/completions", completion),
    ] {
        let response = app.post_json(path, &token, body).await;
        assert_eq!(response.status(), 429, "{path}");
        let body: Value = response.json().await.unwrap();
        assert_quota_fields(&body["error"], "messages_per_day", 2, &resets_at);
    }
    // Nothing was generated or stored for the refused turns.
    assert_eq!(app.upstream.requests().len(), asked);
    let report = usage(&app, &token, "").await;
    assert_eq!(report["today"]["messages"]["used"], 2);
    assert_eq!(report["today"]["messages"]["left"], 0);
    let conversations = app.conversations(&token).await;
    assert_eq!(conversations.len(), 2, "no conversation for refused turns");

    // A new UTC day: the quota is back.
    app.state.billing.clock.advance(chrono::Duration::days(1));
    let ack = send_text(&mut socket, "a new day", None).await;
    assert_eq!(ack["type"], "ack");
    let response = app
        .post_json("/api/messages", &token, json!({ "content": "and again" }))
        .await;
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn the_token_quota_stops_turns_once_the_days_tokens_are_spent() {
    // One reply from the fake upstream costs 15 tokens.
    let app = app_with_free_plan(PlanConfig {
        tokens_per_day: Some(15),
        ..PlanConfig::default()
    })
    .await;
    let token = app.register("ada@example.com").await;
    chat_turn(&app, &token, "one").await;
    let response = app
        .post_json("/api/messages", &token, json!({ "content": "two" }))
        .await;
    assert_eq!(response.status(), 429);
    let body: Value = response.json().await.unwrap();
    assert_quota_fields(&body["error"], "tokens_per_day", 15, &next_midnight(&app));
    assert_eq!(body["error"]["used"], 15);
}

#[tokio::test]
async fn guests_have_the_anonymous_plan_and_its_quota() {
    let app = spawn_app_with(|config| {
        config.plans.insert("anonymous".into(), messages_per_day(1));
    })
    .await;
    let guest = app.guest().await;
    chat_turn(&app, &guest, "one").await;
    let response = app
        .post_json("/api/messages", &guest, json!({ "content": "two" }))
        .await;
    assert_eq!(response.status(), 429);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["plan"], "anonymous");
    // Signed-in users are on the default plan, untouched.
    let token = app.register("ada@example.com").await;
    chat_turn(&app, &token, "one").await;
    chat_turn(&app, &token, "two").await;
}

#[tokio::test]
async fn a_model_outside_the_plan_is_refused_with_a_clear_error() {
    let app = app_with_free_plan(PlanConfig {
        models: Some(vec!["some-other-model".into()]),
        ..PlanConfig::default()
    })
    .await;
    let token = app.register("ada@example.com").await;
    let (mut socket, _) = app.chat(&token, None).await;
    socket
        .send_json(json!({ "type": "text", "content": "hi" }))
        .await;
    let error = socket.next_event().await;
    assert_eq!(error["type"], "error");
    assert_eq!(error["code"], "model_not_in_plan");
    assert!(
        error["message"].as_str().unwrap().contains(&model(&app)),
        "{error}"
    );
    let response = app
        .post_json("/api/messages", &token, json!({ "content": "hi" }))
        .await;
    assert_eq!(response.status(), 403);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "model_not_in_plan");
    assert!(app.upstream.requests().is_empty());
}
