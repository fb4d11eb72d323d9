//! Share links: a read-only snapshot anyone with the link can read without
//! signing in and without learning who shared it; revoked, replaced or
//! deleted links are 404; a reader forks it into their own conversations.

use serde_json::{json, Value};

use crate::{
    fake_openai::Script,
    helpers::{spawn_app, spawn_app_with, TestApp},
};

/// A conversation of `token` with one exchange; returns its id.
async fn conversation(app: &TestApp, token: &str, question: &str, answer: &str) -> String {
    app.upstream.push(Script::tokens(&[answer]));
    let body: Value = app
        .post_json("/api/messages", token, json!({ "content": question }))
        .await
        .json()
        .await
        .unwrap();
    body["conversation_id"].as_str().unwrap().to_owned()
}

async fn share(app: &TestApp, token: &str, id: &str) -> Value {
    let response = app
        .post_json(&format!("/api/conversations/{id}/share"), token, json!({}))
        .await;
    assert_eq!(response.status(), 201);
    response.json().await.unwrap()
}

async fn read_shared(app: &TestApp, share_id: &str) -> reqwest::Response {
    app.http
        .get(app.url(&format!("/api/shared/{share_id}")))
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_snapshot_is_readable_without_sign_in_and_says_nothing_of_its_owner() {
    let app = spawn_app().await;
    let owner = app.register("owner@example.com").await;
    let id = conversation(&app, &owner, "What is a haiku?", "A short poem.").await;
    let link = share(&app, &owner, &id).await;
    let share_id = link["share_id"].as_str().unwrap().to_owned();
    assert!(share_id.len() >= 22, "at least 128 random bits: {share_id}");
    assert_eq!(link["url"], format!("/s/{share_id}"));

    // Said after sharing: not in the snapshot.
    conversation_more(&app, &owner, &id).await;

    let response = read_shared(&app, &share_id).await;
    assert_eq!(response.status(), 200);
    let shared: Value = response.json().await.unwrap();
    let messages = shared["messages"].as_array().unwrap();
    let said: Vec<(&str, &str)> = messages
        .iter()
        .map(|m| {
            (
                m["sender"].as_str().unwrap(),
                m["content"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        said,
        [("user", "What is a haiku?"), ("assistant", "A short poem.")]
    );
    assert!(messages[0]["created_at"].is_string());
    let me: Value = app.get("/api/auth/me", &owner).await.json().await.unwrap();
    let text = shared.to_string();
    for private in [me["id"].as_str().unwrap(), "owner@example.com", id.as_str()] {
        assert!(!text.contains(private), "{private} leaked: {text}");
    }
    for key in ["user_id", "email", "conversation_id"] {
        assert!(shared.get(key).is_none(), "{key} leaked: {text}");
    }

    // The page of the link is the UI's, with its strict headers.
    let page = app
        .http
        .get(app.url(link["url"].as_str().unwrap()))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.headers().contains_key("content-security-policy"));
    assert!(page.text().await.unwrap().contains("shared.js"));
}

async fn conversation_more(app: &TestApp, token: &str, id: &str) {
    app.upstream.push(Script::tokens(&["Later words."]));
    let response = app
        .post_json(
            "/api/messages",
            token,
            json!({ "conversation_id": id, "content": "A later question" }),
        )
        .await;
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn revoked_replaced_and_deleted_links_are_404_and_strangers_cannot_share() {
    let app = spawn_app().await;
    let owner = app.register("sharer@example.com").await;
    let stranger = app.register("stranger@example.com").await;
    let id = conversation(&app, &owner, "Hello", "Hi").await;

    let refused = app
        .post_json(
            &format!("/api/conversations/{id}/share"),
            &stranger,
            json!({}),
        )
        .await;
    assert_eq!(refused.status(), 404);

    let first = share(&app, &owner, &id).await["share_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let second = share(&app, &owner, &id).await["share_id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(first, second);
    assert_eq!(read_shared(&app, &first).await.status(), 404, "replaced");
    assert_eq!(read_shared(&app, &second).await.status(), 200);

    let revoked = app
        .http
        .delete(app.url(&format!("/api/conversations/{id}/share")))
        .bearer_auth(&owner)
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 204);
    let gone = read_shared(&app, &second).await;
    assert_eq!(gone.status(), 404);
    let body: Value = gone.json().await.unwrap();
    assert_eq!(body["error"]["code"], "not_found");

    let third = share(&app, &owner, &id).await["share_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let deleted = app
        .http
        .delete(app.url(&format!("/api/conversations/{id}")))
        .bearer_auth(&owner)
        .send()
        .await
        .unwrap();
    assert!(deleted.status().is_success());
    assert_eq!(read_shared(&app, &third).await.status(), 404, "deleted");
    assert_eq!(read_shared(&app, "not a share id").await.status(), 404);
}

#[tokio::test]
async fn a_reader_forks_the_snapshot_into_their_own_conversation() {
    let app = spawn_app().await;
    let owner = app.register("author@example.com").await;
    let reader = app.guest().await;
    let id = conversation(&app, &owner, "Teach me knots", "Start with a bowline.").await;
    let share_id = share(&app, &owner, &id).await["share_id"]
        .as_str()
        .unwrap()
        .to_owned();

    let forked = app
        .post_json(&format!("/api/shared/{share_id}/fork"), &reader, json!({}))
        .await;
    assert_eq!(forked.status(), 201);
    let forked: Value = forked.json().await.unwrap();
    let copy = forked["conversation_id"].as_str().unwrap();
    assert_ne!(copy, id);
    let stored = app.conversation(copy, &reader).await;
    let said: Vec<(&str, &str, u64)> = stored["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["sender"].as_str().unwrap(),
                m["content"].as_str().unwrap(),
                m["seq"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        said,
        [
            ("user", "Teach me knots", 1),
            ("assistant", "Start with a bowline.", 2)
        ]
    );
    // The copy is the reader's to continue; the original stays the owner's.
    app.upstream.push(Script::tokens(&["Then a clove hitch."]));
    let next = app
        .post_json(
            "/api/messages",
            &reader,
            json!({ "conversation_id": copy, "content": "And then?" }),
        )
        .await;
    assert_eq!(next.status(), 200);
    assert_eq!(
        app.get(&format!("/api/conversations/{id}"), &reader)
            .await
            .status(),
        404
    );
    // Forking needs a session.
    let anonymous = app
        .http
        .post(app.url(&format!("/api/shared/{share_id}/fork")))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
}

#[tokio::test]
async fn sharing_is_rate_limited_per_user() {
    let app = spawn_app_with(|config| config.shares_per_hour_per_user = 2).await;
    let owner = app.register("eager@example.com").await;
    let id = conversation(&app, &owner, "Hi", "Hello").await;
    share(&app, &owner, &id).await;
    share(&app, &owner, &id).await;
    let limited = app
        .post_json(&format!("/api/conversations/{id}/share"), &owner, json!({}))
        .await;
    assert_eq!(limited.status(), 429);
    assert!(limited.headers().contains_key("retry-after"));
}

#[tokio::test]
async fn a_snapshot_shows_each_replys_tool_calls_in_order_without_ids() {
    let app = spawn_app().await;
    let owner = app.register("tool-sharer@example.com").await;
    app.upstream.push(Script::tool_calls(&[
        ("c_calc", "calculate", r#"{"expression":"6 * 7"}"#),
        (
            "c_zone",
            "get_current_time",
            r#"{"timezone":"Mars/Olympus"}"#,
        ),
    ]));
    app.upstream.push(Script::tokens(&["It is 42."]));
    let body: Value = app
        .post_json("/api/messages", &owner, json!({ "content": "6 times 7?" }))
        .await
        .json()
        .await
        .unwrap();
    let id = body["conversation_id"].as_str().unwrap().to_owned();
    let link = share(&app, &owner, &id).await;

    let shared: Value = read_shared(&app, link["share_id"].as_str().unwrap())
        .await
        .json()
        .await
        .unwrap();
    let messages = shared["messages"].as_array().unwrap();
    assert!(messages[0].get("tool_calls").is_none(), "{shared}");
    assert_eq!(messages[1]["content"], "It is 42.");
    assert_eq!(
        messages[1]["tool_calls"],
        json!([
            { "name": "calculate", "arguments": { "expression": "6 * 7" }, "result": { "expression": "6 * 7", "result": 42 } },
            {
                "name": "get_current_time",
                "arguments": { "timezone": "Mars/Olympus" },
                "error": {
                    "code": "unknown_timezone",
                    "message": "\"Mars/Olympus\" is not an IANA time zone name (such as \"Asia/Tokyo\").",
                },
            },
        ]),
        "in the order the model made them, with no call, reply or owner ids"
    );
    let text = shared.to_string();
    assert!(!text.contains("c_calc") && !text.contains(&id), "{text}");
}
