use serde_json::{json, Value};

use crate::helpers::{spawn_app, spawn_app_with, Socket};

#[tokio::test]
async fn register_then_login_returns_bearer_tokens() {
    let app = spawn_app().await;
    let response = app
        .http
        .post(app.url("/auth/register"))
        .json(&json!({ "email": "Ada@Example.com", "password": "analytical engine", "full_name": "Ada" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["token_type"], "bearer");
    assert!(body["expires_in"].as_u64().unwrap() > 0);
    assert_eq!(body["user"]["email"], "ada@example.com");
    assert_eq!(body["user"]["full_name"], "Ada");
    assert!(body["user"].get("password_hash").is_none());

    let login = app
        .http
        .post(app.url("/auth/login"))
        .json(&json!({ "email": "ada@example.com", "password": "analytical engine" }))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 200);
    let token = login.json::<Value>().await.unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let me: Value = app.get("/api/auth/me", &token).await.json().await.unwrap();
    assert_eq!(me["email"], "ada@example.com");
}

#[tokio::test]
async fn bad_credentials_and_bad_registrations_get_clear_errors() {
    let app = spawn_app().await;
    app.register("grace@example.com").await;

    let wrong = app
        .http
        .post(app.url("/auth/login"))
        .json(&json!({ "email": "grace@example.com", "password": "nope nope nope" }))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let body: Value = wrong.json().await.unwrap();
    assert_eq!(body["error"]["code"], "invalid_credentials");

    let taken = app
        .http
        .post(app.url("/auth/register"))
        .json(&json!({ "email": "GRACE@example.com", "password": "another password" }))
        .send()
        .await
        .unwrap();
    assert_eq!(taken.status(), 409);

    for (body, code) in [
        (
            json!({ "email": "not-an-email", "password": "long enough" }),
            "invalid_email",
        ),
        (
            json!({ "email": "x@example.com", "password": "short" }),
            "invalid_password",
        ),
        (json!({ "email": "x@example.com" }), "invalid_json"),
    ] {
        let response = app
            .http
            .post(app.url("/auth/register"))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{body}");
        let error: Value = response.json().await.unwrap();
        assert_eq!(error["error"]["code"], code, "{body}");
    }
}

#[tokio::test]
async fn endpoints_require_a_valid_token_in_header_or_query() {
    let app = spawn_app().await;
    let token = app.register("lin@example.com").await;
    let missing = app
        .http
        .get(app.url("/api/conversations"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 401);
    let body: Value = missing.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unauthorized");
    let forged = app
        .get("/api/conversations", "eyJhbGciOiJIUzI1NiJ9.e30.forged")
        .await;
    assert_eq!(forged.status(), 401);
    let by_query = app
        .http
        .get(app.url(&format!("/api/conversations?token={token}")))
        .send()
        .await
        .unwrap();
    assert_eq!(by_query.status(), 200);
}

#[tokio::test]
async fn socket_without_valid_token_is_closed_with_1008_not_authenticated() {
    let app = spawn_app().await;
    for path in [
        "/api/v1/chat/ws".to_owned(),
        "/api/v1/chat/ws?token=garbage".to_owned(),
        format!("/v2/chat/{}", uuid_like()),
    ] {
        let mut socket = Socket::connect(&app.ws_url(&path)).await;
        let closed = socket.closed().await;
        assert_eq!(closed.code, Some(1008), "{path}");
        assert_eq!(closed.reason, "Not authenticated", "{path}");
    }
}

#[tokio::test]
async fn socket_accepts_the_token_as_a_bearer_header() {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let app = spawn_app().await;
    let token = app.register("hdr@example.com").await;
    let mut request = app.ws_url("/api/v1/chat/ws").into_client_request().unwrap();
    request
        .headers_mut()
        .insert("Authorization", format!("Bearer {token}").parse().unwrap());
    let mut socket = Socket::connect_request(request).await;
    assert_eq!(socket.next_event().await["type"], "ready");
}

#[tokio::test]
async fn anonymous_conversations_can_be_claimed_by_a_signed_in_user() {
    let app = spawn_app().await;
    let anonymous: Value = app
        .http
        .post(app.url("/api/auth/anonymous"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(anonymous["user"]["is_anonymous"], true);
    let anon_token = anonymous["access_token"].as_str().unwrap();
    let created: Value = app
        .post_json(
            "/api/conversations",
            anon_token,
            json!({ "title": "guest chat" }),
        )
        .await
        .json()
        .await
        .unwrap();
    let id = created["id"].as_str().unwrap();

    let token = app.register("claimer@example.com").await;
    let claimed = app
        .post_json(
            "/api/auth/claim",
            &token,
            json!({ "anonymous_token": anon_token }),
        )
        .await;
    assert_eq!(claimed.status(), 200);
    assert_eq!(
        claimed.json::<Value>().await.unwrap()["claimed_conversations"],
        1
    );
    let mine = app.get(&format!("/api/conversations/{id}"), &token).await;
    assert_eq!(mine.status(), 200);
    // The anonymous session is retired.
    assert_eq!(
        app.get("/api/conversations", anon_token).await.status(),
        401
    );
    // Claiming twice, or with a non-anonymous token, is refused.
    let again = app
        .post_json(
            "/api/auth/claim",
            &token,
            json!({ "anonymous_token": anon_token }),
        )
        .await;
    assert_eq!(again.status(), 400);
}

fn uuid_like() -> &'static str {
    "01a1ffda-13a2-72d7-ae5e-a469f74af714"
}

#[tokio::test]
async fn metrics_are_for_admins_only() {
    let app = spawn_app_with(|config| config.admins = vec!["boss@example.com".into()]).await;
    let boss = app.register("boss@example.com").await;
    let worker = app.register("worker@example.com").await;
    let anonymous = app.http.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
    let refused = app.get("/metrics", &worker).await;
    assert_eq!(refused.status(), 403);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["code"], "admin_required");
    let allowed = app.get("/metrics", &boss).await;
    assert_eq!(allowed.status(), 200);
    assert!(allowed.text().await.unwrap().contains("colloquy_voice"));
}
