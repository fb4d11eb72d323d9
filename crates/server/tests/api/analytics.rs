//! Analytics: batches from guests and users, the 400s naming the field at
//! fault, the admin-only daily summary, the server's own `turn_completed`
//! with the turn's timings, and the per-user batch budget.

use serde_json::{json, Value};

use crate::{
    fake_openai::Script,
    helpers::{send_text, spawn_app_with, TestApp},
};

const ADMIN: &str = "admin@example.com";

async fn today_counts(app: &TestApp, admin: &str) -> Value {
    let response = app.get("/api/analytics/summary", admin).await;
    assert_eq!(response.status(), 200);
    let summary: Value = response.json().await.unwrap();
    let today = chrono::Utc::now().date_naive().to_string();
    assert_eq!(summary["to"], today);
    summary["days"]
        .as_array()
        .unwrap()
        .iter()
        .find(|day| day["date"] == today)
        .map(|day| day["counts"].clone())
        .unwrap_or_else(|| json!({}))
}

#[tokio::test]
async fn batches_are_counted_per_day_for_admins_and_bad_ones_store_nothing() {
    let app = spawn_app_with(|config| config.admins = vec![ADMIN.into()]).await;
    let admin = app.register(ADMIN).await;
    let guest = app.guest().await;

    let accepted = app
        .post_json(
            "/api/analytics/events",
            &guest,
            json!([
                { "name": "paywall_shown", "properties": { "plan": "pro" } },
                { "name": "upgrade_click" },
                { "name": "upgrade_click", "ts": chrono::Utc::now().to_rfc3339() },
            ]),
        )
        .await;
    assert_eq!(accepted.status(), 202);
    assert_eq!(accepted.json::<Value>().await.unwrap()["accepted"], 3);

    // One bad event refuses the whole batch, naming it.
    let refused = app
        .post_json(
            "/api/analytics/events",
            &guest,
            json!([{ "name": "upgrade_click" }, { "name": "Upgrade Click" }]),
        )
        .await;
    assert_eq!(refused.status(), 400);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["code"], "invalid_event");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("events[1].name"),
        "{body}"
    );

    let counts = today_counts(&app, &admin).await;
    assert_eq!(
        counts,
        json!({ "paywall_shown": 1, "upgrade_click": 2 }),
        "the refused batch stored nothing"
    );

    // Only administrators read the summary; a bad range is a clear 400.
    let forbidden = app.get("/api/analytics/summary", &guest).await;
    assert_eq!(forbidden.status(), 403);
    let backwards = app
        .get(
            "/api/analytics/summary?from=2026-02-01&to=2026-01-01",
            &admin,
        )
        .await;
    assert_eq!(backwards.status(), 400);
    let garbled = app.get("/api/analytics/summary?from=monday", &admin).await;
    assert_eq!(garbled.status(), 400);
    assert_eq!(
        app.http
            .post(app.url("/api/analytics/events"))
            .json(&json!([]))
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
}

#[tokio::test]
async fn every_turn_records_turn_completed_with_its_timings() {
    let app = spawn_app_with(|config| config.admins = vec![ADMIN.into()]).await;
    let admin = app.register(ADMIN).await;
    let token = app.register("talker@example.com").await;
    app.upstream.push(Script::tokens(&["Hello", " there"]));
    let (mut socket, _) = app.chat(&token, None).await;
    let ack = send_text(&mut socket, "hi", None).await;
    let reply_id = ack["reply_id"].as_str().unwrap().to_owned();
    socket.reply_events(&reply_id).await;

    // Recorded right after the final message: wait for it briefly.
    let mut counts = json!({});
    for _ in 0..50 {
        counts = today_counts(&app, &admin).await;
        if counts["turn_completed"] == 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(counts, json!({ "turn_completed": 1 }));

    let (properties,): (String,) =
        sqlx::query_as("SELECT properties FROM analytics_events WHERE name = 'turn_completed'")
            .fetch_one(&app.state.db)
            .await
            .unwrap();
    let properties: Value = serde_json::from_str(&properties).unwrap();
    assert_eq!(properties["status"], "complete");
    assert_eq!(properties["reply_chars"], "Hello there".len());
    let first_text = properties["first_text_ms"]
        .as_u64()
        .expect("first text time");
    let total = properties["total_ms"].as_u64().expect("total time");
    assert!(first_text <= total, "{properties}");

    // The turn is in /metrics too, beside the voice figures, in one exposition.
    let metrics = app.get("/metrics", &admin).await.text().await.unwrap();
    for line in [
        "colloquy_turn_ack_to_first_text_seconds_count 1",
        "colloquy_turn_ack_to_end_seconds_count 1",
        "colloquy_turn_turns_total{status=\"complete\"} 1",
        "colloquy_voice_turns_total 0",
    ] {
        assert!(metrics.lines().any(|l| l == line), "{line} in:\n{metrics}");
    }
    assert_eq!(metrics.matches("# EOF").count(), 1);
    assert!(metrics.trim_end().ends_with("# EOF"));

    // A client cannot forge the server's own events.
    let forged = app
        .post_json(
            "/api/analytics/events",
            &token,
            json!([{ "name": "turn_completed" }]),
        )
        .await;
    assert_eq!(forged.status(), 400);
}

#[tokio::test]
async fn batches_beyond_the_per_user_budget_get_429_with_retry_after() {
    let app = spawn_app_with(|config| config.analytics_batches_per_minute_per_user = 2).await;
    let token = app.register("chatty@example.com").await;
    for _ in 0..2 {
        let response = app
            .post_json("/api/analytics/events", &token, json!([{ "name": "tick" }]))
            .await;
        assert_eq!(response.status(), 202);
    }
    let limited = app
        .post_json("/api/analytics/events", &token, json!([{ "name": "tick" }]))
        .await;
    assert_eq!(limited.status(), 429);
    assert!(limited.headers().contains_key("retry-after"));
    // Another user's budget is their own.
    let other = app.register("quiet@example.com").await;
    let response = app
        .post_json("/api/analytics/events", &other, json!([{ "name": "tick" }]))
        .await;
    assert_eq!(response.status(), 202);
}
