//! Sign-in with an external identity provider's JWTs (issue 17): keys from
//! a JWKS document the test serves (ES256, RS256, rotation, refetch limits)
//! and Supabase's legacy HS256 secret, over HTTP and sockets.

use serde_json::{json, Value};

use crate::{
    fake_idp::{claims, sign_hs256, FakeIdp, TestKey, AUDIENCE, ISSUER},
    helpers::{spawn_app_with, Socket, TestApp},
};

const SHARED_SECRET: &str = "super-secret-jwt-token-with-at-least-32-characters";

async fn app_trusting(idp: Option<&FakeIdp>, min_refetch_secs: u64) -> TestApp {
    let jwks_url = idp.map(FakeIdp::jwks_url);
    spawn_app_with(|config| {
        config.auth.external.jwks_url = jwks_url;
        config.auth.external.external_hs256_secret = Some(SHARED_SECRET.into());
        config.auth.external.issuer = Some(ISSUER.into());
        config.auth.external.audience = AUDIENCE.into();
        config.auth.external.jwks_min_refetch_secs = min_refetch_secs;
    })
    .await
}

async fn me(app: &TestApp, token: &str) -> (u16, Value) {
    let response = app.get("/api/auth/me", token).await;
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

/// The chat socket's first answer to `token`: `Ok(ready)` or the close.
async fn socket_answer(app: &TestApp, token: &str) -> Result<Value, (Option<u16>, String)> {
    let mut socket = Socket::connect(&app.ws_url(&format!("/api/v1/chat/ws?token={token}"))).await;
    socket
        .next_event_or_close()
        .await
        .map_err(|closed| (closed.code, closed.reason))
}

fn refused_like_ours(status: u16, body: &Value) {
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error"]["code"], "unauthorized", "{body}");
}

fn not_authenticated() -> Result<Value, (Option<u16>, String)> {
    Err((Some(1008), "Not authenticated".into()))
}

#[tokio::test]
async fn es256_token_from_the_jwks_signs_in_a_new_user_on_http_and_sockets() {
    let key = TestKey::es256("ec-1");
    let idp = FakeIdp::start(&[&key]).await;
    let app = app_trusting(Some(&idp), 30).await;
    let token = key.sign(&claims("idp-user-1", Some("Ada@Example.com")));

    let (status, user) = me(&app, &token).await;
    assert_eq!(status, 200, "{user}");
    assert_eq!(user["email"], "ada@example.com");
    assert_eq!(user["is_anonymous"], false);
    // The same subject is the same user; the cached keys serve it.
    let (_, again) = me(&app, &token).await;
    assert_eq!(again["id"], user["id"]);
    assert_eq!(idp.fetches(), 1);

    let ready = socket_answer(&app, &token).await.expect("socket accepted");
    assert_eq!(ready["type"], "ready");
    // Conversations are the user's own.
    let created = app
        .post_json("/api/conversations", &token, json!({ "title": "mine" }))
        .await;
    assert_eq!(created.status(), 201);
    assert_eq!(app.conversations(&token).await.len(), 1);
}

#[tokio::test]
async fn rotated_rs256_keys_are_refetched_on_an_unknown_kid() {
    let old = TestKey::rs256("rsa-old");
    let new = TestKey::rs256("rsa-new");
    let idp = FakeIdp::start(&[&old]).await;
    let app = app_trusting(Some(&idp), 0).await;
    let (status, first) = me(&app, &old.sign(&claims("rotating", None))).await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(idp.fetches(), 1);

    idp.publish(&[&new]);
    let (status, second) = me(&app, &new.sign(&claims("rotating", None))).await;
    assert_eq!(status, 200, "{second}");
    assert_eq!(second["id"], first["id"]);
    assert_eq!(idp.fetches(), 2);
    // The retired key is gone from the refetched document.
    let (status, body) = me(&app, &old.sign(&claims("rotating", None))).await;
    refused_like_ours(status, &body);
}

#[tokio::test]
async fn unknown_kid_within_the_refetch_interval_is_refused_without_a_fetch() {
    let known = TestKey::es256("known");
    let unknown = TestKey::es256("unknown");
    let idp = FakeIdp::start(&[&known]).await;
    let app = app_trusting(Some(&idp), 3600).await;
    assert_eq!(me(&app, &known.sign(&claims("a", None))).await.0, 200);
    assert_eq!(idp.fetches(), 1);

    // Published now, but the last fetch was too recent to fetch again.
    idp.publish(&[&known, &unknown]);
    let token = unknown.sign(&claims("b", None));
    for _ in 0..5 {
        let (status, body) = me(&app, &token).await;
        refused_like_ours(status, &body);
    }
    assert_eq!(socket_answer(&app, &token).await, not_authenticated());
    assert_eq!(idp.fetches(), 1);
}

#[tokio::test]
async fn hs256_tokens_need_the_right_issuer_audience_expiry_and_secret() {
    let app = app_trusting(None, 30).await;
    let good = claims("hs-user", Some("hs@example.com"));
    let (status, user) = me(&app, &sign_hs256(SHARED_SECRET, &good)).await;
    assert_eq!(status, 200, "{user}");
    assert_eq!(user["email"], "hs@example.com");

    let now = jsonwebtoken::get_current_timestamp();
    let mut wrong_issuer = good.clone();
    wrong_issuer["iss"] = json!("https://elsewhere.test/auth/v1");
    let mut wrong_audience = good.clone();
    wrong_audience["aud"] = json!("anon");
    let mut expired = good.clone();
    expired["exp"] = json!(now - 600);
    let mut no_expiry = good.clone();
    no_expiry.as_object_mut().unwrap().remove("exp");
    let bad_tokens = [
        sign_hs256(SHARED_SECRET, &wrong_issuer),
        sign_hs256(SHARED_SECRET, &wrong_audience),
        sign_hs256(SHARED_SECRET, &expired),
        sign_hs256(SHARED_SECRET, &no_expiry),
        sign_hs256("another-secret-that-is-also-32-characters-long", &good),
        // An ES256 token when no JWKS is configured.
        TestKey::es256("k").sign(&good),
    ];
    for token in &bad_tokens {
        let (status, body) = me(&app, token).await;
        refused_like_ours(status, &body);
        assert_eq!(socket_answer(&app, token).await, not_authenticated());
    }
}

#[tokio::test]
async fn an_anonymous_external_user_can_be_claimed_by_an_account() {
    let app = app_trusting(None, 30).await;
    let mut guest_claims = claims("anon-sub", None);
    guest_claims["is_anonymous"] = json!(true);
    let guest = sign_hs256(SHARED_SECRET, &guest_claims);
    let (status, user) = me(&app, &guest).await;
    assert_eq!(status, 200, "{user}");
    assert_eq!(user["is_anonymous"], true);
    let created = app
        .post_json(
            "/api/conversations",
            &guest,
            json!({ "title": "guest chat" }),
        )
        .await;
    assert_eq!(created.status(), 201);

    let account = app.register("owner@example.com").await;
    let claimed = app
        .post_json(
            "/api/auth/claim",
            &account,
            json!({ "anonymous_token": guest }),
        )
        .await;
    assert_eq!(claimed.status(), 200);
    assert_eq!(
        claimed.json::<Value>().await.unwrap()["claimed_conversations"],
        1
    );
    assert_eq!(app.conversations(&account).await.len(), 1);
}

#[tokio::test]
async fn an_anonymous_external_user_linked_by_the_provider_becomes_registered() {
    let app = app_trusting(None, 30).await;
    let mut guest_claims = claims("linked-sub", None);
    guest_claims["is_anonymous"] = json!(true);
    let (_, guest) = me(&app, &sign_hs256(SHARED_SECRET, &guest_claims)).await;
    assert_eq!(guest["is_anonymous"], true);

    let linked = claims("linked-sub", Some("linked@example.com"));
    let (status, user) = me(&app, &sign_hs256(SHARED_SECRET, &linked)).await;
    assert_eq!(status, 200, "{user}");
    assert_eq!(user["id"], guest["id"]);
    assert_eq!(user["is_anonymous"], false);
    assert_eq!(user["email"], "linked@example.com");
}
