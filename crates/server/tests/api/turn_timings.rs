//! Turn timings of typed turns: every turn, whatever its transport, stores
//! one timing row (received, stored, first text, end), readable where voice
//! timings are, and counts in the `/metrics` histograms.

use std::time::Duration;

use serde_json::{json, Value};

use crate::{
    fake_openai::Script,
    helpers::{send_text, spawn_app_with, TestApp, EVENT_WAIT},
};

const ADMIN: &str = "timings-admin@example.com";

/// The conversation's timings once `count` rows are stored (they are
/// written right after the reply's final message).
async fn timings(app: &TestApp, id: &str, token: &str, count: usize) -> Vec<Value> {
    let deadline = tokio::time::Instant::now() + EVENT_WAIT;
    loop {
        let body: Value = app
            .get(&format!("/api/conversations/{id}/timings"), token)
            .await
            .json()
            .await
            .unwrap();
        let rows = body["timings"].as_array().cloned().unwrap_or_default();
        if rows.len() >= count {
            return rows;
        }
        assert!(tokio::time::Instant::now() < deadline, "timings: {body}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn typed_turns_over_http_and_sockets_record_one_ordered_timing_row_each() {
    let app = spawn_app_with(|config| config.admins = vec![ADMIN.into()]).await;
    let admin = app.register(ADMIN).await;
    let token = app.register("typist@example.com").await;
    app.upstream.push(Script::tokens(&["Over", " HTTP"]));
    let sent: Value = app
        .post_json("/api/messages", &token, json!({ "content": "first" }))
        .await
        .json()
        .await
        .unwrap();
    let id = sent["conversation_id"].as_str().unwrap().to_owned();

    app.upstream
        .push(Script::tokens(&["Over", " a", " socket"]));
    let (mut socket, _) = app.chat(&token, Some(&id)).await;
    let ack = send_text(&mut socket, "second", None).await;
    socket.reply_events(ack["reply_id"].as_str().unwrap()).await;

    let rows = timings(&app, &id, &token, 2).await;
    assert_eq!(rows.len(), 2, "{rows:?}");
    let replies = [&sent["assistant_message"]["id"], &ack["reply_id"]];
    for (row, reply_id) in rows.iter().zip(replies) {
        assert_eq!(&row["reply_id"], reply_id, "{row}");
        assert_eq!(row["transport"], "text");
        assert_eq!(row["interrupted"], false);
        assert!(row["speech_end_at"].is_null() && row["first_audio_at"].is_null());
        let stamps: Vec<i64> = ["received_at", "stored_at", "first_token_at", "turn_end_at"]
            .iter()
            .map(|key| {
                row[key]
                    .as_i64()
                    .unwrap_or_else(|| panic!("{key} missing: {row}"))
            })
            .collect();
        assert!(
            stamps.windows(2).all(|w| w[0] <= w[1]),
            "out of order: {row}"
        );
    }

    // Another user's conversation keeps its timings to itself.
    let stranger = app.register("stranger-timings@example.com").await;
    let refused = app
        .get(&format!("/api/conversations/{id}/timings"), &stranger)
        .await;
    assert_eq!(refused.status(), 404);

    let metrics = app.get("/metrics", &admin).await.text().await.unwrap();
    for line in [
        "colloquy_turn_received_to_stored_seconds_count 2",
        "colloquy_turn_ack_to_first_text_seconds_count 2",
        "colloquy_turn_ack_to_end_seconds_count 2",
    ] {
        assert!(metrics.lines().any(|l| l == line), "{line} in:\n{metrics}");
    }
}
