//! Daily streaks in the user's time zone, across days moved by the server's
//! clock (not slept), over both the socket and the HTTP fallback.

use serde_json::{json, Value};

use crate::{
    fake_openai::Script,
    helpers::{send_text, spawn_app, TestApp},
};

async fn streak(app: &TestApp, token: &str) -> Value {
    let response = app.get("/api/streak", token).await;
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

/// Send one message over HTTP and wait for its reply.
async fn say(app: &TestApp, token: &str, text: &str) {
    app.upstream.push(Script::tokens(&["ok"]));
    let response = app
        .post_json("/api/messages", token, json!({ "content": text }))
        .await;
    assert_eq!(response.status(), 200);
}

/// Today in `zone`, as the server's clock sees it.
fn today_in(app: &TestApp, zone: &str) -> String {
    let zone = colloquy::streak::parse_timezone(zone).unwrap();
    app.state
        .streaks
        .clock
        .now()
        .with_timezone(&zone)
        .date_naive()
        .to_string()
}

#[tokio::test]
async fn consecutive_days_grow_the_streak_a_missed_day_ends_it() {
    let app = spawn_app().await;
    let token = app.register("steady@example.com").await;
    assert_eq!(
        streak(&app, &token).await,
        json!({ "current": 0, "longest": 0, "last_active_date": null })
    );

    // UTC+14: its day differs from UTC's for part of every day.
    let zone = "Pacific/Kiritimati";
    let set = app
        .http
        .patch(app.url("/api/profile"))
        .bearer_auth(&token)
        .json(&json!({ "timezone": zone }))
        .send()
        .await
        .unwrap();
    assert_eq!(set.status(), 200);
    assert_eq!(set.json::<Value>().await.unwrap()["timezone"], zone);

    // Day 1, on a socket; a second message the same day counts once.
    app.upstream.push(Script::tokens(&["hi"]));
    let (mut socket, _) = app.chat(&token, None).await;
    let ack = send_text(&mut socket, "good morning", None).await;
    socket.reply_events(ack["reply_id"].as_str().unwrap()).await;
    say(&app, &token, "again").await;
    assert_eq!(
        streak(&app, &token).await,
        json!({ "current": 1, "longest": 1, "last_active_date": today_in(&app, zone) })
    );

    // Day 2, over HTTP.
    app.state.streaks.clock.advance(chrono::Duration::days(1));
    say(&app, &token, "day two").await;
    let two = streak(&app, &token).await;
    assert_eq!(
        (two["current"].clone(), two["longest"].clone()),
        (json!(2), json!(2))
    );
    assert_eq!(two["last_active_date"], today_in(&app, zone));

    // A day with nothing said: the run is over, the record stays.
    app.state.streaks.clock.advance(chrono::Duration::days(2));
    let broken = streak(&app, &token).await;
    assert_eq!(
        (broken["current"].clone(), broken["longest"].clone()),
        (json!(0), json!(2))
    );
    say(&app, &token, "back").await;
    let again = streak(&app, &token).await;
    assert_eq!(
        (again["current"].clone(), again["longest"].clone()),
        (json!(1), json!(2))
    );
}

#[tokio::test]
async fn an_unknown_time_zone_is_refused_and_the_profile_kept() {
    let app = spawn_app().await;
    let token = app.register("zone@example.com").await;
    let refused = app
        .http
        .patch(app.url("/api/profile"))
        .bearer_auth(&token)
        .json(&json!({ "timezone": "Mars/Olympus_Mons" }))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 400);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["code"], "invalid_timezone");
    let profile: Value = app.get("/api/profile", &token).await.json().await.unwrap();
    assert_eq!(profile["timezone"], "UTC");
}
