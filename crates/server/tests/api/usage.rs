//! Usage metering end to end: each reply stores what it cost (the fake
//! upstream's reported tokens, tool calls) once, whatever its transport and
//! however it ended; `GET /api/usage`, `GET /api/admin/usage`, `/metrics`
//! and `GET /api/auth/me` read it back.

use serde_json::{json, Value};

use crate::{
    fake_openai::Script,
    helpers::{send_text, spawn_app, spawn_app_with, TestApp},
};

/// `GET /api/usage` (with `query`) as JSON.
pub async fn usage(app: &TestApp, token: &str, query: &str) -> Value {
    let response = app.get(&format!("/api/usage{query}"), token).await;
    assert_eq!(response.status(), 200, "/api/usage{query}");
    response.json().await.unwrap()
}

/// Today's row of `model` in a usage report.
pub fn row<'a>(report: &'a Value, model: &str) -> &'a Value {
    report["days"]
        .as_array()
        .unwrap()
        .iter()
        .find(|day| day["model"] == model)
        .unwrap_or_else(|| panic!("no usage of {model}: {report}"))
}

/// The id usage counts the default model under.
pub fn model(app: &TestApp) -> String {
    app.state.turns.default_model_id()
}

/// Send `content` over a chat socket and wait for the reply's final message.
pub async fn chat_turn(app: &TestApp, token: &str, content: &str) -> Value {
    let (mut socket, _) = app.chat(token, None).await;
    let ack = send_text(&mut socket, content, None).await;
    let reply_id = ack["reply_id"].as_str().unwrap().to_owned();
    socket.reply_events(&reply_id).await.pop().unwrap()
}

#[tokio::test]
async fn a_text_reply_counts_the_tokens_the_upstream_reported() {
    let app = spawn_app().await;
    let token = app.register("ada@example.com").await;
    let reply = chat_turn(&app, &token, "hello").await;
    assert_eq!(reply["status"], "complete");
    let response = app
        .post_json("/api/messages", &token, json!({ "content": "again" }))
        .await;
    assert_eq!(response.status(), 200);

    // The provider was asked to report usage in the stream.
    let requests = app.upstream.requests();
    assert_eq!(requests[0]["stream_options"]["include_usage"], true);

    let report = usage(&app, &token, "").await;
    let today = row(&report, &model(&app));
    assert_eq!(today["messages"], 2, "{report}");
    assert_eq!(today["prompt_tokens"], 20);
    assert_eq!(today["completion_tokens"], 10);
    assert_eq!(today["tool_calls"], 0);
    assert_eq!(today["voice_ms_in"], 0);
    assert_eq!(report["plan"]["name"], "free");
    assert_eq!(report["plan"]["status"], "default");
    assert_eq!(report["today"]["messages"]["used"], 2);
    let max = report["plan"]["limits"]["messages_per_day"]
        .as_u64()
        .unwrap();
    assert_eq!(report["today"]["messages"]["left"], max - 2);
    assert_eq!(report["today"]["tokens"]["used"], 30);
}

#[tokio::test]
async fn a_tool_turn_sums_its_rounds_and_counts_its_calls() {
    let app = spawn_app().await;
    let token = app.register("ada@example.com").await;
    app.upstream.push(Script::tool_calls(&[
        ("call_a", "calculate", r#"{"expression": "6 * 7"}"#),
        ("call_b", "calculate", r#"{"expression": "1 + 1"}"#),
    ]));
    app.upstream.push(Script::tokens(&["42 and 2."]));
    let reply = chat_turn(&app, &token, "two sums please").await;
    assert_eq!(reply["content"], "42 and 2.");

    let report = usage(&app, &token, "").await;
    let today = row(&report, &model(&app));
    // Round one (20 + 8) and round two (10 + 5), one reply.
    assert_eq!(today["messages"], 1, "{report}");
    assert_eq!(today["prompt_tokens"], 30);
    assert_eq!(today["completion_tokens"], 13);
    assert_eq!(today["tool_calls"], 2);
}

#[tokio::test]
async fn failed_and_interrupted_replies_are_counted_once_and_resends_are_free() {
    let app = spawn_app().await;
    let token = app.register("ada@example.com").await;
    let (mut socket, _) = app.chat(&token, None).await;

    // A failed reply: one message, nothing generated.
    app.upstream.push(Script::Status(500));
    let ack = send_text(&mut socket, "fail", Some("c-1")).await;
    let reply_id = ack["reply_id"].as_str().unwrap().to_owned();
    let end = socket.reply_events(&reply_id).await.pop().unwrap();
    assert_eq!(end["status"], "error");
    // The same client_id again: nothing new is stored or counted.
    let again = send_text(&mut socket, "fail", Some("c-1")).await;
    assert_eq!(again["reply_id"], ack["reply_id"]);
    let report = usage(&app, &token, "").await;
    let today = row(&report, &model(&app));
    assert_eq!(
        (
            today["messages"].as_i64(),
            today["completion_tokens"].as_i64()
        ),
        (Some(1), Some(0)),
        "{report}"
    );

    // An interrupted reply: what was generated is estimated from its text.
    app.upstream.push(Script::StallAfter(
        vec!["Some words before the stop".into()],
    ));
    let ack = send_text(&mut socket, "stall", None).await;
    let reply_id = ack["reply_id"].as_str().unwrap().to_owned();
    loop {
        if socket.next_event().await["type"] == "delta" {
            break;
        }
    }
    socket.send_json(json!({ "type": "stop" })).await;
    let end = socket.reply_events(&reply_id).await.pop().unwrap();
    assert_eq!(end["status"], "interrupted");
    let report = usage(&app, &token, "").await;
    let today = row(&report, &model(&app));
    assert_eq!(today["messages"], 2, "{report}");
    assert!(today["completion_tokens"].as_i64().unwrap() > 0, "{report}");
    assert!(today["prompt_tokens"].as_i64().unwrap() > 0, "{report}");
}

#[tokio::test]
async fn usage_is_per_utc_day_and_the_range_is_checked() {
    let app = spawn_app().await;
    let token = app.register("ada@example.com").await;
    chat_turn(&app, &token, "day one").await;
    let first_day = app.state.billing.today();
    app.state.billing.clock.advance(chrono::Duration::days(1));
    chat_turn(&app, &token, "day two").await;
    let second_day = app.state.billing.today();

    let query = format!("?from={first_day}&to={second_day}");
    let report = usage(&app, &token, &query).await;
    let days: Vec<(String, i64)> = report["days"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["day"].as_str().unwrap().to_owned(),
                d["messages"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        days,
        [(first_day.to_string(), 1), (second_day.to_string(), 1)]
    );
    assert_eq!(report["today"]["messages"]["used"], 1);

    for bad in [
        format!("?from={second_day}&to={first_day}"),
        "?from=yesterday".to_owned(),
        "?from=2020-01-01&to=2026-01-01".to_owned(),
    ] {
        let response = app.get(&format!("/api/usage{bad}"), &token).await;
        assert_eq!(response.status(), 400, "{bad}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "invalid_query");
    }
}

#[tokio::test]
async fn admin_usage_lists_every_user_for_admins_only() {
    let app = spawn_app_with(|config| config.admins = vec!["boss@example.com".into()]).await;
    let boss = app.register("boss@example.com").await;
    let ada = app.register("ada@example.com").await;
    let guest = app.guest().await;
    chat_turn(&app, &ada, "hello").await;
    chat_turn(&app, &guest, "hi").await;

    for token in [&ada, &guest] {
        let response = app.get("/api/admin/usage", token).await;
        assert_eq!(response.status(), 403);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "admin_required");
    }
    let response = app.get("/api/admin/usage", &boss).await;
    assert_eq!(response.status(), 200);
    let report: Value = response.json().await.unwrap();
    let users = report["users"].as_array().unwrap();
    assert_eq!(users.len(), 2, "{report}");
    assert!(users
        .iter()
        .all(|u| u["messages"] == 1 && u["prompt_tokens"] == 10));
    let response = app.get("/api/admin/usage?limit=0", &boss).await;
    assert_eq!(response.status(), 400);
    let one: Value = app
        .get("/api/admin/usage?limit=1", &boss)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(one["users"].as_array().unwrap().len(), 1);

    // The same spending as counters by model.
    let metrics = app.get("/metrics", &boss).await.text().await.unwrap();
    let model = model(&app);
    for line in [
        format!("colloquy_usage_replies_total{{model=\"{model}\"}} 2"),
        format!("colloquy_usage_tokens_total{{model=\"{model}\",kind=\"prompt\"}} 20"),
        format!("colloquy_usage_tokens_total{{model=\"{model}\",kind=\"completion\"}} 10"),
    ] {
        assert!(metrics.contains(&line), "{line} in\n{metrics}");
    }
}

#[tokio::test]
async fn me_shows_the_plan_billing_set_and_guests_get_the_anonymous_plan() {
    let app = spawn_app().await;
    let token = app.register("ada@example.com").await;
    let me: Value = app.get("/api/auth/me", &token).await.json().await.unwrap();
    assert_eq!(me["email"], "ada@example.com");
    assert_eq!(
        me["plan"],
        json!({ "name": "free", "status": "default", "renews_at": null, "cancel_at_period_end": false })
    );
    let guest = app.guest().await;
    let me: Value = app.get("/api/auth/me", &guest).await.json().await.unwrap();
    assert_eq!(me["plan"]["name"], "anonymous");

    // Billing puts the user on a plan (here `free` with a renewal date,
    // the only other built-in one being for guests).
    let user_id: uuid::Uuid = me_id(&app, &token).await;
    let renews_at = chrono::DateTime::parse_from_rfc3339("2030-01-02T03:04:05Z")
        .unwrap()
        .to_utc();
    colloquy::store::set_user_plan(
        &app.state.db,
        &colloquy::store::NewUserPlan {
            user_id,
            plan: "anonymous",
            status: "active",
            renews_at: Some(renews_at),
            cancel_at_period_end: true,
        },
    )
    .await
    .unwrap();
    let me: Value = app.get("/api/auth/me", &token).await.json().await.unwrap();
    assert_eq!(me["plan"]["name"], "anonymous");
    assert_eq!(me["plan"]["status"], "active");
    assert_eq!(me["plan"]["renews_at"], "2030-01-02T03:04:05Z");
    assert_eq!(me["plan"]["cancel_at_period_end"], true);

    // A subscription no longer in good standing falls back to the default plan.
    colloquy::store::set_user_plan(
        &app.state.db,
        &colloquy::store::NewUserPlan {
            user_id,
            plan: "anonymous",
            status: "canceled",
            renews_at: None,
            cancel_at_period_end: false,
        },
    )
    .await
    .unwrap();
    let me: Value = app.get("/api/auth/me", &token).await.json().await.unwrap();
    assert_eq!(me["plan"]["name"], "free");
}

/// The token's user id.
pub async fn me_id(app: &TestApp, token: &str) -> uuid::Uuid {
    let me: Value = app.get("/api/auth/me", token).await.json().await.unwrap();
    me["id"].as_str().unwrap().parse().unwrap()
}
