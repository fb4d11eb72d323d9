use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::{client::IntoClientRequest, Message};

use crate::{
    fake_openai::Script,
    helpers::{send_text, spawn_app_with, Socket},
};

#[tokio::test]
async fn a_message_over_the_frame_limit_closes_the_socket_with_1009() {
    let app = spawn_app_with(|config| {
        config.max_frame_bytes = 8192;
        config.max_reply_chars = 1000;
    })
    .await;
    let token = app.register("big@example.com").await;
    let (mut socket, _) = app.chat(&token, None).await;
    let huge = json!({ "type": "text", "content": "x".repeat(10_000) });
    socket
        .send_raw(Message::Text(huge.to_string().into()))
        .await;
    let closed = socket.closed().await;
    assert_eq!(closed.code, Some(1009));
    assert_eq!(closed.reason, "message too big");
}

#[tokio::test]
async fn sending_too_fast_is_refused_then_closed_as_abuse() {
    let app = spawn_app_with(|config| {
        config.messages_per_minute_per_socket = 2;
        config.rate_limit_strikes = 3;
    })
    .await;
    let token = app.register("fast@example.com").await;
    let (mut socket, _) = app.chat(&token, None).await;
    for i in 0..2 {
        send_text(&mut socket, &format!("ok {i}"), None).await;
    }
    socket
        .send_json(json!({ "type": "text", "content": "one too many" }))
        .await;
    let refused = loop {
        let event = socket.next_event().await;
        if event["type"] == "error" {
            break event;
        }
    };
    assert_eq!(refused["code"], "rate_limited");
    for _ in 0..3 {
        socket
            .send_json(json!({ "type": "text", "content": "again" }))
            .await;
    }
    let closed = socket.closed().await;
    assert_eq!(
        (closed.code, closed.reason.as_str()),
        (Some(1008), "rate limit exceeded")
    );
}

#[tokio::test]
async fn http_messages_share_the_users_rate_limit() {
    let app = spawn_app_with(|config| config.messages_per_minute_per_user = 1).await;
    let token = app.register("httpfast@example.com").await;
    let first = app
        .post_json("/api/messages", &token, json!({ "content": "one" }))
        .await;
    assert_eq!(first.status(), 200);
    let second = app
        .post_json("/api/messages", &token, json!({ "content": "two" }))
        .await;
    assert_eq!(second.status(), 429);
    assert_eq!(
        second.json::<Value>().await.unwrap()["error"]["code"],
        "rate_limited"
    );
}

#[tokio::test]
async fn sockets_per_user_are_capped_and_freed_when_they_close() {
    let app = spawn_app_with(|config| config.max_sockets_per_user = 2).await;
    let token = app.register("tabs-cap@example.com").await;
    let (first, _) = app.chat(&token, None).await;
    let (_second, _) = app.chat(&token, None).await;
    let mut third = Socket::connect(&app.ws_url(&format!("/api/v1/chat/ws?token={token}"))).await;
    let closed = third.closed().await;
    assert_eq!(
        (closed.code, closed.reason.as_str()),
        (Some(1008), "Too many connections")
    );
    drop(first);
    // The slot is released once the server sees the close.
    let mut reopened = None;
    for _ in 0..50 {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        if app.state.limits.open_sockets() < 2 {
            reopened = Some(app.chat(&token, None).await);
            break;
        }
    }
    assert!(reopened.is_some(), "a slot was freed");
}

#[tokio::test]
async fn a_foreign_origin_cannot_open_a_socket() {
    let app =
        spawn_app_with(|config| config.allowed_origins = vec!["https://app.example.com".into()])
            .await;
    let token = app.register("origin@example.com").await;
    let url = app.ws_url(&format!("/api/v1/chat/ws?token={token}"));
    let with_origin = |origin: &str| {
        let mut request = url.as_str().into_client_request().unwrap();
        request
            .headers_mut()
            .insert("Origin", origin.parse().unwrap());
        request
    };
    let refused = tokio_tungstenite::connect_async(with_origin("https://evil.example.com")).await;
    match refused {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 403)
        }
        other => panic!("expected a 403, got {other:?}"),
    }
    let (mut allowed, _) = tokio_tungstenite::connect_async(with_origin("https://app.example.com"))
        .await
        .unwrap();
    use futures::StreamExt;
    let ready = allowed.next().await.unwrap().unwrap();
    assert!(ready.to_text().unwrap().contains("\"ready\""));
    let same_origin = with_origin(&format!("http://{}", app.addr));
    assert!(tokio_tungstenite::connect_async(same_origin).await.is_ok());
}

#[tokio::test]
async fn a_reply_stops_at_the_maximum_reply_size() {
    let app = spawn_app_with(|config| config.max_reply_chars = 12).await;
    app.upstream
        .push(Script::tokens(&["abcdefgh", "ijklmnop", "qrstuvwx"]));
    let token = app.register("cap@example.com").await;
    let (mut socket, _) = app.chat(&token, None).await;
    let ack = send_text(&mut socket, "say a lot", None).await;
    let events = socket.reply_events(ack["reply_id"].as_str().unwrap()).await;
    let last = events.last().unwrap();
    assert_eq!(last["content"], "abcdefghijkl");
    assert_eq!(last["status"], "complete");
}

#[tokio::test]
async fn sockets_beyond_the_servers_maximum_close_with_1013_and_can_retry() {
    let app = spawn_app_with(|config| config.max_connections = 2).await;
    let first_user = app.register("full-1@example.com").await;
    let second_user = app.register("full-2@example.com").await;
    let (first, _) = app.chat(&first_user, None).await;
    let (_second, _) = app.chat(&second_user, None).await;
    let url = app.ws_url(&format!("/api/v1/chat/ws?token={second_user}"));
    let closed = Socket::connect(&url).await.closed().await;
    assert_eq!(
        (closed.code, closed.reason.as_str()),
        (Some(1013), "try again later")
    );
    drop(first);
    let mut reopened = None;
    for _ in 0..50 {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        if app.state.limits.open_sockets() < 2 {
            reopened = Some(app.chat(&second_user, None).await);
            break;
        }
    }
    assert!(reopened.is_some(), "a place was freed");
}
