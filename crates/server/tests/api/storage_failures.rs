//! Storage failures are the server's trouble, not the client's: a request
//! whose user cannot be loaded is answered 503 (retry), never 401 (sign
//! out), and sockets close with 1011 (retry), never 1008 (give up).

use serde_json::Value;

use crate::helpers::{spawn_app, Closed, Socket, TestApp};

/// Make every query fail for real: close the server's own connection pool.
async fn break_database(app: &TestApp) {
    app.state.db.close().await;
}

async fn closed(app: &TestApp, path: &str) -> Closed {
    Socket::connect(&app.ws_url(path)).await.closed().await
}

#[tokio::test]
async fn a_database_failure_while_authenticating_is_503_not_401() {
    let app = spawn_app().await;
    let token = app.register("steady@example.com").await;
    break_database(&app).await;
    for path in ["/api/auth/me", "/api/conversations"] {
        let response = app.get(path, &token).await;
        assert_eq!(response.status(), 503, "{path}");
        assert!(response.headers().contains_key("retry-after"), "{path}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "unavailable", "{path}");
        assert!(
            !body.to_string().contains("pool"),
            "internals stay in the logs: {body}"
        );
    }
    // A bad token is still a bad token.
    assert_eq!(app.get("/api/auth/me", "garbage").await.status(), 401);
}

#[tokio::test]
async fn a_missing_users_table_is_503_too() {
    let app = spawn_app().await;
    let token = app.register("table@example.com").await;
    sqlx::query("ALTER TABLE users RENAME TO users_elsewhere")
        .execute(&app.state.db)
        .await
        .unwrap();
    let response = app.get("/api/auth/me", &token).await;
    assert_eq!(response.status(), 503);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unavailable");
}

#[tokio::test]
async fn a_database_failure_closes_chat_sockets_with_1011_not_1008() {
    let app = spawn_app().await;
    let token = app.register("sockets@example.com").await;
    break_database(&app).await;
    for path in [
        format!("/api/v1/chat/ws?token={token}"),
        format!("/v2/chat/{}?token={token}", uuid::Uuid::now_v7()),
    ] {
        let closed = closed(&app, &path).await;
        assert_eq!(closed.code, Some(1011), "{path}: {closed:?}");
        assert_eq!(closed.reason, "Service unavailable", "{path}");
    }
    let closed = closed(&app, "/api/v1/chat/ws?token=garbage").await;
    assert_eq!(closed.code, Some(1008), "a bad token is still final");
}

#[tokio::test]
async fn a_database_failure_closes_the_voice_socket_with_1011_not_1008() {
    let app = spawn_app().await;
    let token = app.register("voice@example.com").await;
    let plan = app.plan(&token, "Run a 5k", &["Buy shoes"]).await;
    let step = plan["steps"][0]["id"].as_str().unwrap().to_owned();
    break_database(&app).await;
    let closed = closed(&app, &format!("/voice/stream/{step}?token={token}")).await;
    assert_eq!(closed.code, Some(1011), "{closed:?}");
    assert_eq!(closed.reason, "Service unavailable");
}
