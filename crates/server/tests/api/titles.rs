//! Generated titles: after a new conversation's first reply the model names
//! it, the owner's sockets hear `renamed`, and a title the user set wins.

use serde_json::{json, Value};

use crate::{
    fake_openai::Script,
    helpers::{send_text, spawn_app_with, Socket, TestApp},
};

async fn titled_app() -> TestApp {
    spawn_app_with(|config| config.auto_titles = true).await
}

/// The next `conversation` event on `socket`, skipping conversation events.
async fn next_list_event(socket: &mut Socket) -> Value {
    loop {
        let event = socket.next_event().await;
        if event["type"] == "conversation" {
            return event;
        }
    }
}

#[tokio::test]
async fn the_first_reply_is_followed_by_a_generated_title_for_every_socket() {
    let app = titled_app().await;
    let token = app.register("titles@example.com").await;
    app.upstream
        .push(Script::tokens(&["Paris", " is", " lovely"]));
    app.upstream.push(Script::tokens(&[
        "\"Paris Travel",
        " Tips.\"",
        "\nextra line",
    ]));
    let (mut elsewhere, _) = app.chat(&token, None).await;
    let (mut socket, ready) = app.chat(&token, None).await;
    let id = ready["conversation_id"].as_str().unwrap().to_owned();
    let ack = send_text(&mut socket, "Tell me about Paris", None).await;
    socket.reply_events(ack["reply_id"].as_str().unwrap()).await;

    for socket in [&mut socket, &mut elsewhere] {
        // The other socket first hears the conversation created.
        let mut event = next_list_event(socket).await;
        if event["action"] == "created" {
            event = next_list_event(socket).await;
        }
        assert_eq!(event["action"], "renamed", "{event}");
        assert_eq!(event["conversation_id"], id.as_str());
        assert_eq!(event["title"], "Paris Travel Tips");
    }
    assert_eq!(
        app.conversation(&id, &token).await["title"],
        "Paris Travel Tips"
    );

    // The title prompt quotes the exchange and is capped.
    let requests = app.upstream.requests();
    assert_eq!(requests.len(), 2);
    let prompt = &requests[1];
    assert!(prompt["max_tokens"].as_u64().unwrap() <= 32, "{prompt}");
    let quoted = prompt["messages"][1]["content"].as_str().unwrap();
    assert!(quoted.contains("User: Tell me about Paris"), "{quoted}");
    assert!(quoted.contains("Assistant: Paris is lovely"), "{quoted}");

    // Later replies leave the title alone.
    app.upstream.push(Script::tokens(&["Sure"]));
    let ack = send_text(&mut socket, "And Lyon?", None).await;
    socket.reply_events(ack["reply_id"].as_str().unwrap()).await;
    app.upstream.push(Script::tokens(&["Again"]));
    let ack = send_text(&mut socket, "And Nice?", None).await;
    socket.reply_events(ack["reply_id"].as_str().unwrap()).await;
    assert_eq!(app.upstream.requests().len(), 4, "no second title request");
    assert_eq!(
        app.conversation(&id, &token).await["title"],
        "Paris Travel Tips"
    );
}

#[tokio::test]
async fn a_title_the_user_set_is_never_replaced() {
    let app = titled_app().await;
    let token = app.register("renamer@example.com").await;
    app.upstream.push(Script::slow(
        &["A", " slow", " answer"],
        std::time::Duration::from_millis(150),
    ));
    let (mut socket, ready) = app.chat(&token, None).await;
    let id = ready["conversation_id"].as_str().unwrap().to_owned();
    let ack = send_text(&mut socket, "Something to rename", None).await;
    let renamed = app
        .http
        .patch(app.url(&format!("/api/conversations/{id}")))
        .bearer_auth(&token)
        .json(&json!({ "title": "My own name" }))
        .send()
        .await
        .unwrap();
    assert_eq!(renamed.status(), 200);
    socket.reply_events(ack["reply_id"].as_str().unwrap()).await;
    // A title attempt starts as soon as the first reply is stored, so by
    // the time a second reply is done it would have asked the model.
    app.upstream.push(Script::tokens(&["Second"]));
    let ack = send_text(&mut socket, "more", None).await;
    socket.reply_events(ack["reply_id"].as_str().unwrap()).await;
    let requests = app.upstream.requests();
    assert_eq!(requests.len(), 2, "only the two replies: {requests:?}");
    assert_eq!(app.conversation(&id, &token).await["title"], "My own name");
}
