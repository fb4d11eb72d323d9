//! Branches (issue 16): an edit (`text` with `parent_id`) and a
//! `regenerate` keep the message they replace as an alternative; the
//! conversation shows, and the model reads, only the active path; a client
//! switches branch with `PUT /api/conversations/{id}/active`.

use serde_json::{json, Value};

use crate::{
    fake_openai::Script,
    helpers::{send_text, seq, spawn_app, Socket, TestApp},
};

/// Send `content` (following `parent_id` when given: `Some(Value::Null)`
/// for a new first message) and wait for its reply; returns (ack, reply).
async fn exchange(socket: &mut Socket, content: &str, parent_id: Option<Value>) -> (Value, Value) {
    let ack = match parent_id {
        None => send_text(socket, content, None).await,
        Some(parent) => {
            socket
                .send_json(json!({ "type": "text", "content": content, "parent_id": parent }))
                .await;
            next_of(socket, "ack").await
        }
    };
    let reply = socket.reply_events(ack["reply_id"].as_str().unwrap()).await;
    (ack, reply.last().unwrap().clone())
}

/// The next event of type `kind`; fails on an `error` event.
async fn next_of(socket: &mut Socket, kind: &str) -> Value {
    loop {
        let event = socket.next_event().await;
        assert_ne!(event["type"], "error", "unexpected error: {event}");
        if event["type"] == kind {
            return event;
        }
    }
}

/// Ask for a new reply to the question `reply_id` answered; returns its final `message`.
async fn regenerate(socket: &mut Socket, reply_id: &str) -> Value {
    socket
        .send_json(json!({ "type": "regenerate", "message_id": reply_id }))
        .await;
    loop {
        let event = next_of(socket, "message").await;
        if event["message_id"] != reply_id {
            return event;
        }
    }
}

/// The active path's messages as (content, sibling_index, sibling_count).
fn path(conversation: &Value) -> Vec<(String, u64, u64)> {
    conversation["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["content"].as_str().unwrap().to_owned(),
                m["sibling_index"].as_u64().unwrap(),
                m["sibling_count"].as_u64().unwrap(),
            )
        })
        .collect()
}

/// The (role, content) pairs of the upstream's last request after the system prompt.
fn last_prompt(app: &TestApp) -> Vec<(String, String)> {
    let requests = app.upstream.requests();
    let last = requests.last().expect("the upstream was asked");
    last["messages"]
        .as_array()
        .unwrap()
        .iter()
        .skip(1)
        .map(|m| {
            (
                m["role"].as_str().unwrap().to_owned(),
                m["content"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

fn turn(role: &str, content: &str) -> (String, String) {
    (role.to_owned(), content.to_owned())
}

async fn switch(app: &TestApp, token: &str, id: &str, message_id: &Value) -> reqwest::Response {
    app.http
        .put(app.url(&format!("/api/conversations/{id}/active")))
        .bearer_auth(token)
        .json(&json!({ "message_id": message_id }))
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn an_edit_keeps_the_original_question_and_the_model_reads_only_the_edit() {
    let app = spawn_app().await;
    let token = app.register("edit@example.com").await;
    let (mut socket, ready) = app.chat(&token, None).await;
    let id = ready["conversation_id"].as_str().unwrap().to_owned();
    app.upstream.push(Script::tokens(&["a1"]));
    let (_, first_reply) = exchange(&mut socket, "q1", None).await;
    app.upstream.push(Script::tokens(&["a2"]));
    let (original, _) = exchange(&mut socket, "q2", None).await;

    app.upstream.push(Script::tokens(&["a2 edited"]));
    let parent = first_reply["message_id"].clone();
    let (edit, _) = exchange(&mut socket, "q2 edited", Some(parent.clone())).await;

    assert_eq!(
        last_prompt(&app),
        [
            turn("user", "q1"),
            turn("assistant", "a1"),
            turn("user", "q2 edited")
        ]
    );
    let conversation = app.conversation(&id, &token).await;
    assert_eq!(
        path(&conversation),
        [
            ("q1".into(), 0, 1),
            ("a1".into(), 0, 1),
            ("q2 edited".into(), 1, 2),
            ("a2 edited".into(), 0, 1),
        ]
    );
    let edited = &conversation["messages"][2];
    assert_eq!(edited["id"], edit["message_id"]);
    assert_eq!(edited["parent_id"], parent);
    assert_eq!(
        edited["sibling_ids"],
        json!([original["message_id"], edit["message_id"]])
    );
}

#[tokio::test]
async fn an_edit_of_the_first_message_names_a_null_parent() {
    let app = spawn_app().await;
    let token = app.register("first-edit@example.com").await;
    let (mut socket, ready) = app.chat(&token, None).await;
    let id = ready["conversation_id"].as_str().unwrap().to_owned();
    exchange(&mut socket, "hello", None).await;
    app.upstream.push(Script::tokens(&["hi again"]));
    exchange(&mut socket, "hello there", Some(Value::Null)).await;

    assert_eq!(last_prompt(&app), [turn("user", "hello there")]);
    let conversation = app.conversation(&id, &token).await;
    assert_eq!(
        path(&conversation),
        [("hello there".into(), 1, 2), ("hi again".into(), 0, 1)]
    );
    assert_eq!(conversation["messages"][0]["parent_id"], Value::Null);
}

#[tokio::test]
async fn a_regenerated_reply_is_a_sibling_of_the_first_and_the_model_does_not_read_the_first() {
    let app = spawn_app().await;
    let token = app.register("regenerate@example.com").await;
    let (mut socket, ready) = app.chat(&token, None).await;
    let id = ready["conversation_id"].as_str().unwrap().to_owned();
    app.upstream.push(Script::tokens(&["first", " try"]));
    let (question, first) = exchange(&mut socket, "tell me a joke", None).await;

    app.upstream.push(Script::tokens(&["second", " try"]));
    let second = regenerate(&mut socket, first["message_id"].as_str().unwrap()).await;
    assert_eq!(second["content"], "second try");
    assert_eq!(second["status"], "complete");
    assert_eq!(last_prompt(&app), [turn("user", "tell me a joke")]);

    let conversation = app.conversation(&id, &token).await;
    assert_eq!(
        path(&conversation),
        [("tell me a joke".into(), 0, 1), ("second try".into(), 1, 2)]
    );
    let shown = &conversation["messages"][1];
    assert_eq!(shown["parent_id"], question["message_id"]);
    assert_eq!(
        shown["sibling_ids"],
        json!([first["message_id"], second["message_id"]])
    );
}

#[tokio::test]
async fn switching_branch_shows_the_other_alternative_and_new_messages_follow_it() {
    let app = spawn_app().await;
    let token = app.register("switch@example.com").await;
    let (mut socket, ready) = app.chat(&token, None).await;
    let id = ready["conversation_id"].as_str().unwrap().to_owned();
    app.upstream.push(Script::tokens(&["one"]));
    let (question, first) = exchange(&mut socket, "count", None).await;
    app.upstream.push(Script::tokens(&["uno"]));
    let second = regenerate(&mut socket, first["message_id"].as_str().unwrap()).await;
    app.upstream.push(Script::tokens(&["dos"]));
    exchange(&mut socket, "next", None).await;
    assert_eq!(
        last_prompt(&app),
        [
            turn("user", "count"),
            turn("assistant", "uno"),
            turn("user", "next")
        ]
    );

    // Back to the first reply: its branch has nothing after it.
    let response = switch(&app, &token, &id, &first["message_id"]).await;
    assert_eq!(response.status(), 200);
    let switched: Value = response.json().await.unwrap();
    assert_eq!(
        path(&switched),
        [("count".into(), 0, 1), ("one".into(), 0, 2)]
    );
    assert_eq!(path(&app.conversation(&id, &token).await), path(&switched));

    app.upstream.push(Script::tokens(&["two"]));
    let (next, _) = exchange(&mut socket, "then?", None).await;
    assert_eq!(
        last_prompt(&app),
        [
            turn("user", "count"),
            turn("assistant", "one"),
            turn("user", "then?")
        ]
    );
    let conversation = app.conversation(&id, &token).await;
    assert_eq!(conversation["messages"][2]["id"], next["message_id"]);
    assert_eq!(
        conversation["messages"][2]["parent_id"],
        first["message_id"]
    );

    // Switching to the other reply shows its newest descendants again.
    let switched: Value = switch(&app, &token, &id, &second["message_id"])
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        path(&switched),
        [
            ("count".into(), 0, 1),
            ("uno".into(), 1, 2),
            ("next".into(), 0, 1),
            ("dos".into(), 0, 1),
        ]
    );
    assert_eq!(switched["messages"][0]["id"], question["message_id"]);
}

#[tokio::test]
async fn a_resume_from_before_the_branches_replays_every_alternative_once_in_order() {
    let app = spawn_app().await;
    let token = app.register("branch-resume@example.com").await;
    let (mut socket, ready) = app.chat(&token, None).await;
    let id = ready["conversation_id"].as_str().unwrap().to_owned();
    let (_, first) = exchange(&mut socket, "q", None).await;
    let resume_from = seq(&first);
    let second = regenerate(&mut socket, first["message_id"].as_str().unwrap()).await;
    let (edit, edit_reply) = exchange(&mut socket, "q again", Some(Value::Null)).await;
    drop(socket);

    let path = format!("/api/v1/chat/ws?token={token}&conversationId={id}&last_seq={resume_from}");
    let mut socket = Socket::connect(&app.ws_url(&path)).await;
    let ready = socket.next_event().await;
    assert_eq!(ready["type"], "ready");
    let head = ready["last_seq"].as_u64().unwrap();
    assert_eq!(head, seq(&edit_reply));
    let mut replayed = Vec::new();
    while replayed.last().map(seq) != Some(head) {
        replayed.push(socket.next_event().await);
    }
    let seqs: Vec<u64> = replayed.iter().map(seq).collect();
    assert!(seqs.windows(2).all(|pair| pair[0] < pair[1]), "{seqs:?}");
    assert!(seqs[0] > resume_from);
    // Deltas come too when the replay is from memory; the stored events are these.
    let ids: Vec<(&str, &Value)> = replayed
        .iter()
        .filter(|e| e["type"] != "delta")
        .map(|e| (e["type"].as_str().unwrap(), &e["message_id"]))
        .collect();
    assert_eq!(
        ids,
        [
            ("message", &second["message_id"]),
            ("ack", &edit["message_id"]),
            ("message", &edit_reply["message_id"]),
        ]
    );
}

#[tokio::test]
async fn branch_requests_naming_nothing_in_the_conversation_are_refused_clearly() {
    let app = spawn_app().await;
    let token = app.register("bad-branch@example.com").await;
    let (mut socket, ready) = app.chat(&token, None).await;
    let id = ready["conversation_id"].as_str().unwrap().to_owned();
    let (question, _) = exchange(&mut socket, "q", None).await;

    let stranger = uuid::Uuid::now_v7().to_string();
    socket
        .send_json(
            json!({ "type": "text", "content": "x", "parent_id": stranger, "client_id": "b-1" }),
        )
        .await;
    let error = socket.next_error().await;
    assert_eq!(error["code"], "invalid_branch");
    assert_eq!(error["client_id"], "b-1");
    // A question is not a reply: it cannot be regenerated, nor followed by an edit.
    socket
        .send_json(json!({ "type": "regenerate", "message_id": question["message_id"] }))
        .await;
    assert_eq!(socket.next_error().await["code"], "invalid_branch");
    socket
        .send_json(json!({ "type": "regenerate", "message_id": "not-a-uuid" }))
        .await;
    assert_eq!(socket.next_error().await["code"], "invalid_event");

    let unknown = switch(&app, &token, &id, &json!(stranger)).await;
    assert_eq!(unknown.status(), 404);
    let body: Value = unknown.json().await.unwrap();
    assert_eq!(body["error"]["code"], "not_found", "{body}");
    let other = app.register("other-branch@example.com").await;
    assert_eq!(
        switch(&app, &other, &id, &question["message_id"])
            .await
            .status(),
        404
    );
    let over_http = app
        .post_json(
            "/api/messages",
            &token,
            json!({ "conversation_id": id, "content": "x", "parent_id": stranger }),
        )
        .await;
    assert_eq!(over_http.status(), 400);
    let body: Value = over_http.json().await.unwrap();
    assert_eq!(body["error"]["code"], "invalid_branch", "{body}");
    // Nothing was stored by the refusals.
    assert_eq!(
        app.conversation(&id, &token).await["messages"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
}

#[tokio::test]
async fn an_edit_over_http_is_a_sibling_too() {
    let app = spawn_app().await;
    let token = app.register("http-edit@example.com").await;
    let first: Value = app
        .post_json("/api/messages", &token, json!({ "content": "hi" }))
        .await
        .json()
        .await
        .unwrap();
    let id = first["conversation_id"].as_str().unwrap();
    app.upstream.push(Script::tokens(&["edited answer"]));
    let edited = app
        .post_json(
            "/api/messages",
            &token,
            json!({ "conversation_id": id, "content": "hello", "parent_id": null }),
        )
        .await;
    assert_eq!(edited.status(), 200);
    let conversation = app.conversation(id, &token).await;
    assert_eq!(
        path(&conversation),
        [("hello".into(), 1, 2), ("edited answer".into(), 0, 1)]
    );
}
