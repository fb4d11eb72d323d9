//! A new conversation is stored only with its first accepted message:
//! sockets opened and left, and refused messages, leave nothing in the
//! list; the first accepted message stores it and tells the user's other
//! sockets once; its id stays its user's meanwhile, even across a restart.

use serde_json::{json, Value};

use crate::helpers::{send_text, spawn_app, spawn_app_with, Socket, TestApp};

/// The ids of the user's listed conversations.
async fn listed(app: &TestApp, token: &str) -> Vec<String> {
    let conversations = app.conversations(token).await;
    conversations
        .iter()
        .map(|c| c["id"].as_str().unwrap().to_owned())
        .collect()
}

/// Every event `socket` gets before the answer to a ping.
async fn events_until_pong(socket: &mut Socket) -> Vec<Value> {
    socket.send_json(json!({ "type": "ping" })).await;
    let mut events = Vec::new();
    loop {
        let event = socket.next_event().await;
        if event["type"] == "pong" {
            return events;
        }
        events.push(event);
    }
}

fn created_events(events: &[Value]) -> Vec<&Value> {
    events
        .iter()
        .filter(|e| e["type"] == "conversation" && e["action"] == "created")
        .collect()
}

#[tokio::test]
async fn a_socket_opened_and_closed_leaves_no_conversation() {
    let app = spawn_app().await;
    let token = app.register("idle@example.com").await;
    let (mut watcher, _) = app.chat(&token, None).await;

    let (socket, ready) = app.chat(&token, None).await;
    let id = ready["conversation_id"].as_str().unwrap().to_owned();
    assert_eq!(ready["last_seq"], 0);
    drop(socket);
    let session = uuid::Uuid::new_v4();
    let mut v2 = Socket::connect(&app.ws_url(&format!("/v2/chat/{session}?token={token}"))).await;
    assert_eq!(v2.next_event().await["type"], "ready");
    drop(v2);

    assert!(listed(&app, &token).await.is_empty(), "nothing listed");
    let show = app.get(&format!("/api/conversations/{id}"), &token).await;
    assert_eq!(show.status(), 404, "no conversation is stored");
    assert!(
        created_events(&events_until_pong(&mut watcher).await).is_empty(),
        "no `created` for a conversation nothing was said in"
    );
}

#[tokio::test]
async fn a_refused_first_message_creates_nothing() {
    let app = spawn_app_with(|config| {
        config.max_message_chars = 100;
        config.messages_per_minute_per_user = 1;
    })
    .await;
    let token = app.register("refused@example.com").await;
    let (mut socket, _) = app.chat(&token, None).await;
    socket
        .send_json(json!({ "type": "text", "content": "x".repeat(101), "client_id": "long" }))
        .await;
    assert_eq!(socket.next_event().await["code"], "message_too_long");
    socket
        .send_json(json!({ "type": "text", "content": "  " }))
        .await;
    assert_eq!(socket.next_event().await["code"], "empty_message");
    let over_http = app
        .post_json(
            "/api/messages",
            &token,
            json!({ "content": "x".repeat(101) }),
        )
        .await;
    assert_eq!(over_http.status(), 400);
    assert!(listed(&app, &token).await.is_empty());

    // The user's one message a minute goes to another conversation...
    let (mut first, _) = app.chat(&token, None).await;
    send_text(&mut first, "the one allowed", None).await;
    // ...so this one's first message is refused, and it stays unstored.
    socket
        .send_json(json!({ "type": "text", "content": "too soon" }))
        .await;
    assert_eq!(socket.next_error().await["code"], "rate_limited");
    assert_eq!(listed(&app, &token).await.len(), 1, "only the accepted one");
}

#[tokio::test]
async fn the_first_accepted_message_stores_the_conversation_and_says_so_once() {
    let app = spawn_app().await;
    let token = app.register("first@example.com").await;
    let stranger = app.register("stranger@example.com").await;
    let (mut other_tab, _) = app.chat(&token, None).await;
    let (mut strangers_tab, _) = app.chat(&stranger, None).await;
    let (mut socket, ready) = app.chat(&token, None).await;
    let id = ready["conversation_id"].as_str().unwrap().to_owned();

    let ack = send_text(&mut socket, "Plan my week", Some("c1")).await;
    assert_eq!(ack["seq"], 1);
    socket.reply_events(ack["reply_id"].as_str().unwrap()).await;
    let again = send_text(&mut socket, "And the weekend?", None).await;
    assert!(again["seq"].as_u64() > ack["seq"].as_u64());
    socket
        .reply_events(again["reply_id"].as_str().unwrap())
        .await;

    assert_eq!(listed(&app, &token).await, std::slice::from_ref(&id));
    let stored = app.conversation(&id, &token).await;
    assert_eq!(stored["title"], "Plan my week");
    assert_eq!(stored["messages"].as_array().unwrap().len(), 4);
    let heard = events_until_pong(&mut other_tab).await;
    let created = created_events(&heard);
    assert_eq!(created.len(), 1, "told once: {heard:?}");
    assert_eq!(created[0]["conversation_id"], id.as_str());
    assert_eq!(created[0]["title"], "Plan my week");
    assert!(created_events(&events_until_pong(&mut strangers_tab).await).is_empty());
}

#[tokio::test]
async fn a_new_conversations_id_stays_its_users_until_and_after_its_first_message() {
    let app = spawn_app().await;
    let token = app.register("owner@example.com").await;
    let intruder = app.register("intruder@example.com").await;
    let (socket, ready) = app.chat(&token, None).await;
    let id = ready["conversation_id"].as_str().unwrap().to_owned();
    drop(socket);

    // Reconnecting with the id (after a restart too) opens the same empty conversation.
    let app = app.restart().await;
    let (socket, ready) = app.chat(&token, Some(&id)).await;
    assert_eq!(
        (
            ready["conversation_id"].as_str(),
            ready["last_seq"].as_u64()
        ),
        (Some(id.as_str()), Some(0))
    );
    for path in [
        format!("/api/v1/chat/ws?token={intruder}&conversationId={id}"),
        format!("/v2/chat/{id}?token={intruder}"),
    ] {
        let closed = Socket::connect(&app.ws_url(&path)).await.closed().await;
        assert_eq!(
            (closed.code, closed.reason.as_str()),
            (Some(1008), "Conversation not found"),
            "{path}"
        );
    }
    let refused = app
        .post_json(
            "/api/messages",
            &intruder,
            json!({ "conversation_id": id, "content": "mine now" }),
        )
        .await;
    assert_eq!(refused.status(), 404);
    // Resuming after events it never had means it was deleted: refused.
    let resumed = Socket::connect(&app.ws_url(&format!(
        "/api/v1/chat/ws?token={token}&conversationId={id}&last_seq=3"
    )))
    .await
    .closed()
    .await;
    assert_eq!(resumed.reason, "Conversation not found");
    drop(socket);

    let (mut socket, _) = app.chat(&token, Some(&id)).await;
    let ack = send_text(&mut socket, "hello again", Some("c1")).await;
    assert_eq!(ack["seq"], 1);
    let reply = socket.reply_events(ack["reply_id"].as_str().unwrap()).await;
    // A resend after a reconnect is still answered with the original ack.
    let (mut socket, ready) = app.chat(&token, Some(&id)).await;
    assert_eq!(ready["last_seq"], reply.last().unwrap()["seq"]);
    let repeat = send_text(&mut socket, "hello again", Some("c1")).await;
    assert_eq!(
        (repeat["seq"].as_u64(), repeat["message_id"].as_str()),
        (Some(1), ack["message_id"].as_str())
    );
    assert_eq!(listed(&app, &token).await, [id]);
    assert!(listed(&app, &intruder).await.is_empty());
}

#[tokio::test]
async fn a_client_chosen_session_id_is_held_by_its_socket_and_stored_with_a_message() {
    let app = spawn_app().await;
    let token = app.register("session@example.com").await;
    let other = app.register("other@example.com").await;
    let session = uuid::Uuid::new_v4();
    let mut socket =
        Socket::connect(&app.ws_url(&format!("/v2/chat/{session}?token={token}"))).await;
    assert_eq!(
        socket.next_event().await["conversation_id"],
        session.to_string()
    );
    let closed = Socket::connect(&app.ws_url(&format!("/v2/chat/{session}?token={other}")))
        .await
        .closed()
        .await;
    assert_eq!(
        closed.reason, "Conversation not found",
        "held by its socket"
    );
    assert!(listed(&app, &token).await.is_empty());

    let ack = send_text(&mut socket, "hello v2", None).await;
    socket.reply_events(ack["reply_id"].as_str().unwrap()).await;
    assert_eq!(listed(&app, &token).await, [session.to_string()]);
}

#[tokio::test]
async fn the_http_fallback_stores_a_new_conversation_with_its_first_message() {
    let app = spawn_app().await;
    let token = app.register("http-first@example.com").await;
    let (mut tab, _) = app.chat(&token, None).await;
    let answer: Value = app
        .post_json("/api/messages", &token, json!({ "content": "over http" }))
        .await
        .json()
        .await
        .unwrap();
    let id = answer["conversation_id"].as_str().unwrap().to_owned();
    assert_eq!(listed(&app, &token).await, std::slice::from_ref(&id));
    let created = events_until_pong(&mut tab).await;
    let created = created_events(&created);
    assert_eq!(created.len(), 1);
    assert_eq!(created[0]["conversation_id"], id.as_str());
}
