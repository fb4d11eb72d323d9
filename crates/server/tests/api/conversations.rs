use serde_json::{json, Value};

use crate::helpers::spawn_app;

#[tokio::test]
async fn conversations_can_be_created_listed_renamed_and_deleted() {
    let app = spawn_app().await;
    let token = app.register("crud@example.com").await;
    let mut ids = Vec::new();
    for title in ["first", "second", "third"] {
        let response = app
            .post_json("/api/conversations", &token, json!({ "title": title }))
            .await;
        assert_eq!(response.status(), 201);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["title"], title);
        ids.push(body["id"].as_str().unwrap().to_owned());
    }
    // An empty body creates an untitled one.
    let untitled = app
        .http
        .post(app.url("/api/conversations"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(untitled.status(), 201);

    let page: Value = app
        .get("/api/conversations?limit=2", &token)
        .await
        .json()
        .await
        .unwrap();
    let titles: Vec<&str> = page["conversations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["title"].as_str().unwrap())
        .collect();
    assert_eq!(titles, ["", "third"], "newest first");
    assert_eq!(page["has_more"], true);
    let next: Value = app
        .get("/api/conversations?limit=2&offset=2", &token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(next["conversations"].as_array().unwrap().len(), 2);
    assert_eq!(next["has_more"], false);

    let renamed = app
        .http
        .patch(app.url(&format!("/api/conversations/{}", ids[0])))
        .bearer_auth(&token)
        .json(&json!({ "title": "  Renamed  " }))
        .send()
        .await
        .unwrap();
    assert_eq!(renamed.status(), 200);
    assert_eq!(renamed.json::<Value>().await.unwrap()["title"], "Renamed");

    let deleted = app
        .http
        .delete(app.url(&format!("/api/conversations/{}", ids[1])))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 204);
    assert_eq!(
        app.get(&format!("/api/conversations/{}", ids[1]), &token)
            .await
            .status(),
        404
    );
}

#[tokio::test]
async fn another_users_conversation_is_a_404_for_every_verb() {
    let app = spawn_app().await;
    let owner = app.register("mine@example.com").await;
    let other = app.register("theirs@example.com").await;
    let created: Value = app
        .post_json("/api/conversations", &owner, json!({ "title": "private" }))
        .await
        .json()
        .await
        .unwrap();
    let path = format!("/api/conversations/{}", created["id"].as_str().unwrap());

    assert_eq!(app.get(&path, &other).await.status(), 404);
    let rename = app
        .http
        .patch(app.url(&path))
        .bearer_auth(&other)
        .json(&json!({ "title": "hijacked" }))
        .send()
        .await
        .unwrap();
    assert_eq!(rename.status(), 404);
    let delete = app
        .http
        .delete(app.url(&path))
        .bearer_auth(&other)
        .send()
        .await
        .unwrap();
    assert_eq!(delete.status(), 404);
    let post = app
        .post_json(
            "/api/messages",
            &other,
            json!({ "conversation_id": created["id"], "content": "sneaky" }),
        )
        .await;
    assert_eq!(post.status(), 404);
    let listed: Value = app
        .get("/api/conversations", &other)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(listed["conversations"].as_array().unwrap().len(), 0);

    // The owner's conversation is untouched.
    let mine: Value = app.get(&path, &owner).await.json().await.unwrap();
    assert_eq!(mine["title"], "private");
    assert_eq!(mine["messages"].as_array().unwrap().len(), 0);
}

#[tokio::test]
async fn malformed_requests_get_json_errors() {
    let app = spawn_app().await;
    let token = app.register("malformed@example.com").await;
    let bad_id = app.get("/api/conversations/not-a-uuid", &token).await;
    assert_eq!(bad_id.status(), 400);
    assert_eq!(
        bad_id.json::<Value>().await.unwrap()["error"]["code"],
        "invalid_path"
    );
    let bad_limit = app.get("/api/conversations?limit=0", &token).await;
    assert_eq!(bad_limit.status(), 400);
    let long_title = app
        .post_json(
            "/api/conversations",
            &token,
            json!({ "title": "t".repeat(500) }),
        )
        .await;
    assert_eq!(long_title.status(), 400);
    assert_eq!(
        long_title.json::<Value>().await.unwrap()["error"]["code"],
        "title_too_long"
    );
    let unknown = app.get("/api/nothing-here", &token).await;
    assert_eq!(unknown.status(), 404);
    assert_eq!(
        unknown.json::<Value>().await.unwrap()["error"]["code"],
        "not_found"
    );
}

#[tokio::test]
async fn every_socket_of_a_user_hears_about_conversation_changes() {
    let app = spawn_app().await;
    let token = app.register("fanout@example.com").await;
    let other = app.register("stranger@example.com").await;
    let (mut tab, _) = app.chat(&token, None).await;
    let (mut strangers_tab, _) = app.chat(&other, None).await;

    let created: Value = app
        .post_json(
            "/api/conversations",
            &token,
            json!({ "title": "from another tab" }),
        )
        .await
        .json()
        .await
        .unwrap();
    let id = created["id"].clone();
    let event = tab.next_event().await;
    assert_eq!(event["type"], "conversation");
    assert_eq!(event["action"], "created");
    assert_eq!(event["conversation_id"], id);
    assert_eq!(event["title"], "from another tab");

    let path = format!("/api/conversations/{}", id.as_str().unwrap());
    app.http
        .patch(app.url(&path))
        .bearer_auth(&token)
        .json(&json!({ "title": "renamed" }))
        .send()
        .await
        .unwrap();
    let event = tab.next_event().await;
    assert_eq!(
        (event["action"].as_str(), event["title"].as_str()),
        (Some("renamed"), Some("renamed"))
    );
    app.http
        .delete(app.url(&path))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(tab.next_event().await["action"], "deleted");

    // Nothing leaked to another user.
    strangers_tab.send_json(json!({ "type": "ping" })).await;
    assert_eq!(strangers_tab.next_event().await["type"], "pong");
    drop(tab);
    drop(strangers_tab);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(app.state.hub.live_users(), 0, "user channels retired");
    assert_eq!(app.state.limits.open_sockets(), 0, "socket slots released");
}

#[tokio::test]
async fn a_body_over_the_limit_is_refused_with_413() {
    let app = crate::helpers::spawn_app_with(|config| config.max_body_bytes = 4096).await;
    let token = app.register("bigbody@example.com").await;
    let response = app
        .post_json(
            "/api/conversations",
            &token,
            json!({ "title": "x".repeat(10_000) }),
        )
        .await;
    assert_eq!(response.status(), 413);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "payload_too_large");
    let message = app
        .post_json(
            "/api/messages",
            &token,
            json!({ "content": "y".repeat(10_000) }),
        )
        .await;
    assert_eq!(message.status(), 413);
    assert_eq!(
        message.json::<Value>().await.unwrap()["error"]["code"],
        "payload_too_large"
    );
}
