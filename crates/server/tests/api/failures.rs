//! Every reply ends, whatever fails: a database that refuses to store
//! replies still lets every transport see its reply end.

use serde_json::{json, Value};

use crate::{
    fake_openai::Script,
    helpers::{on_postgres, send_text, spawn_app, spawn_app_with, sse_events, TestApp},
};

/// Make the real database refuse every assistant message from now on
/// (user messages are still stored), as a full disk or a broken replica would.
async fn refuse_replies(app: &TestApp) {
    let statements: &[&str] = if on_postgres() {
        &[
            "CREATE FUNCTION refuse_replies() RETURNS trigger AS $$
             BEGIN
               IF NEW.sender = 'assistant' THEN RAISE EXCEPTION 'the disk is on fire'; END IF;
               RETURN NEW;
             END $$ LANGUAGE plpgsql",
            "CREATE TRIGGER refuse_replies BEFORE INSERT ON messages
             FOR EACH ROW EXECUTE FUNCTION refuse_replies()",
        ]
    } else {
        &["CREATE TRIGGER refuse_replies BEFORE INSERT ON messages
           WHEN NEW.sender = 'assistant'
           BEGIN SELECT RAISE(ABORT, 'the disk is on fire'); END"]
    };
    for statement in statements {
        sqlx::query(statement)
            .execute(&app.state.db)
            .await
            .expect("trigger created");
    }
}

/// Let the database store replies again.
async fn accept_replies(app: &TestApp) {
    let statement = if on_postgres() {
        "DROP TRIGGER refuse_replies ON messages"
    } else {
        "DROP TRIGGER refuse_replies"
    };
    sqlx::query(statement)
        .execute(&app.state.db)
        .await
        .expect("trigger dropped");
}

#[tokio::test]
async fn a_reply_that_cannot_be_stored_still_ends_on_the_socket() {
    let app = spawn_app().await;
    refuse_replies(&app).await;
    app.upstream.push(Script::tokens(&["lost", " words"]));
    let token = app.register("socket-failure@example.com").await;
    let (mut socket, _) = app.chat(&token, None).await;
    let ack = send_text(&mut socket, "hello", Some("f-1")).await;
    let reply_id = ack["reply_id"].as_str().unwrap().to_owned();
    let events = socket.reply_events(&reply_id).await;
    let error = events
        .iter()
        .find(|e| e["type"] == "error")
        .expect("an error event before the end");
    assert_eq!(error["code"], "storage_error");
    assert_eq!(error["message_id"], reply_id.as_str());
    let last = events.last().unwrap();
    assert_eq!(last["status"], "error");
    assert_eq!(last["is_final"], true);
    assert_eq!(
        last["content"], "lost words",
        "what was generated is not hidden"
    );
    // Sequence numbers stay in order across the unstored events.
    let seqs: Vec<u64> = events.iter().filter_map(|e| e["seq"].as_u64()).collect();
    assert!(seqs.windows(2).all(|pair| pair[0] < pair[1]), "{seqs:?}");

    // The user message was stored; the reply was not, and the next turn works.
    let id = socket_conversation(&app, &token).await;
    let stored = app.conversation(&id, &token).await;
    let messages = stored["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0]["sender"], "user");
}

async fn socket_conversation(app: &TestApp, token: &str) -> String {
    let list: Value = app
        .get("/api/conversations", token)
        .await
        .json()
        .await
        .unwrap();
    list["conversations"][0]["id"]
        .as_str()
        .expect("one conversation")
        .to_owned()
}

#[tokio::test]
async fn a_reply_that_cannot_be_stored_ends_post_messages_with_an_error() {
    let app = spawn_app().await;
    refuse_replies(&app).await;
    app.upstream.push(Script::tokens(&["never", " saved"]));
    let token = app.register("http-failure@example.com").await;
    let response = app
        .post_json("/api/messages", &token, json!({ "content": "hello" }))
        .await;
    assert_eq!(response.status(), 503);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "storage_error");
    assert_eq!(body["assistant_message"]["status"], "error");
    assert_eq!(body["assistant_message"]["content"], "never saved");
    assert!(
        body["user_message"]["id"].is_string(),
        "the user message was stored: {body}"
    );
}

#[tokio::test]
async fn a_reply_that_cannot_be_stored_ends_v2_chat_json_and_sse() {
    let app = spawn_app().await;
    refuse_replies(&app).await;
    let token = app.register("v2-failure@example.com").await;

    app.upstream.push(Script::tokens(&["json", " lost"]));
    let response = app
        .post_json("/v2/chat", &token, json!({ "message": "as json" }))
        .await;
    assert_eq!(response.status(), 503);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "storage_error");

    app.upstream.push(Script::tokens(&["sse", " lost"]));
    let response = app
        .http
        .post(app.url("/v2/chat"))
        .bearer_auth(&token)
        .header("Accept", "text/event-stream")
        .json(&json!({ "message": "as sse" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let (events, _) = sse_events(response).await;
    let kinds: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(kinds.first(), Some(&"ready"));
    assert!(kinds.contains(&"error"), "{kinds:?}");
    let last = events.last().unwrap();
    assert_eq!(last["type"], "message");
    assert_eq!(last["status"], "error");
    assert_eq!(last["content"], "sse lost");
}

#[tokio::test]
async fn a_slow_request_is_answered_with_a_json_timeout() {
    let app = spawn_app_with(|config| config.request_timeout_secs = 1).await;
    // The upstream says nothing for longer than the request may take.
    app.upstream.push(Script::StallAfter(vec![]));
    let token = app.register("slow@example.com").await;
    let response = app
        .post_json(
            "/api/messages",
            &token,
            json!({ "content": "take your time" }),
        )
        .await;
    assert_eq!(response.status(), 504);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "request_timeout");
}

#[tokio::test]
async fn the_next_turn_works_once_storage_is_back() {
    let app = spawn_app().await;
    refuse_replies(&app).await;
    let token = app.register("recovers@example.com").await;
    app.upstream.push(Script::tokens(&["first"]));
    let failed = app
        .post_json("/api/messages", &token, json!({ "content": "one" }))
        .await;
    assert_eq!(failed.status(), 503);
    let body: Value = failed.json().await.unwrap();
    let id = body["conversation_id"].as_str().unwrap().to_owned();
    accept_replies(&app).await;
    app.upstream.push(Script::tokens(&["second"]));
    let ok = app
        .post_json(
            "/api/messages",
            &token,
            json!({ "conversation_id": id, "content": "two" }),
        )
        .await;
    assert_eq!(ok.status(), 200);
    let body: Value = ok.json().await.unwrap();
    assert_eq!(body["assistant_message"]["content"], "second");
}
