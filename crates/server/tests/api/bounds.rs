//! Bounds a client cannot grow past: replies waiting in one conversation,
//! and the messages one conversation read returns.

use std::time::Duration;

use serde_json::{json, Value};

use crate::{
    fake_openai::Script,
    helpers::{send_text, spawn_app, spawn_app_with},
};

#[tokio::test]
async fn a_conversation_refuses_messages_beyond_its_pending_replies() {
    let app = spawn_app_with(|config| config.max_pending_replies = 2).await;
    for _ in 0..2 {
        app.upstream.push(Script::slow(
            &["slow", " reply"],
            Duration::from_millis(300),
        ));
    }
    let token = app.register("pending@example.com").await;
    let (mut socket, _) = app.chat(&token, None).await;
    send_text(&mut socket, "one", Some("p-1")).await;
    send_text(&mut socket, "two", Some("p-2")).await;
    socket
        .send_json(json!({ "type": "text", "content": "three", "client_id": "p-3" }))
        .await;
    let refused = loop {
        let event = socket.next_event().await;
        if event["type"] == "error" {
            break event;
        }
        assert_ne!(
            event["type"], "ack",
            "the third message was accepted: {event}"
        );
    };
    assert_eq!(refused["code"], "busy");
    assert_eq!(refused["client_id"], "p-3");
}

#[tokio::test]
async fn a_conversation_is_read_a_page_at_a_time_newest_first() {
    let app = spawn_app().await;
    let token = app.register("pages@example.com").await;
    let mut conversation_id = Value::Null;
    for turn in 0..3 {
        app.upstream.push(Script::tokens(&["reply"]));
        let body: Value = app
            .post_json(
                "/api/messages",
                &token,
                json!({ "conversation_id": conversation_id, "content": format!("message {turn}") }),
            )
            .await
            .json()
            .await
            .unwrap();
        conversation_id = body["conversation_id"].clone();
    }
    let id = conversation_id.as_str().unwrap();

    let whole = app.conversation(id, &token).await;
    assert_eq!(whole["messages"].as_array().unwrap().len(), 6);
    assert_eq!(whole["has_more"], false);

    let newest: Value = app
        .get(&format!("/api/conversations/{id}?limit=4"), &token)
        .await
        .json()
        .await
        .unwrap();
    let page = newest["messages"].as_array().unwrap();
    assert_eq!(page.len(), 4);
    assert_eq!(
        page[0]["content"], "message 1",
        "oldest first within the page"
    );
    assert_eq!(newest["has_more"], true);
    let before = newest["next_before"]
        .as_u64()
        .expect("a cursor to the older page");

    let older: Value = app
        .get(
            &format!("/api/conversations/{id}?limit=4&before={before}"),
            &token,
        )
        .await
        .json()
        .await
        .unwrap();
    let page = older["messages"].as_array().unwrap();
    assert_eq!(page.len(), 2);
    assert_eq!(page[0]["content"], "message 0");
    assert_eq!(older["has_more"], false);

    let refused = app
        .get(&format!("/api/conversations/{id}?limit=0"), &token)
        .await;
    assert_eq!(refused.status(), 400);
}

#[tokio::test]
async fn a_reply_is_read_back_after_its_own_question_even_when_another_came_first() {
    let app = spawn_app().await;
    app.upstream.push(Script::slow(
        &["first", " answer", " takes", " a", " while"],
        Duration::from_millis(150),
    ));
    app.upstream.push(Script::tokens(&["second answer"]));
    let token = app.register("order@example.com").await;
    let (mut socket, ready) = app.chat(&token, None).await;
    let id = ready["conversation_id"].as_str().unwrap().to_owned();
    let first = send_text(&mut socket, "first question", Some("o-1")).await;
    // The second question is stored while the first reply streams.
    let second = send_text(&mut socket, "second question", Some("o-2")).await;
    let second_reply = second["reply_id"].as_str().unwrap().to_owned();
    socket.reply_events(&second_reply).await;
    assert!(second["seq"].as_u64() < socket_final_seq(&app, &id, &token, &first).await);

    let stored = app.conversation(&id, &token).await;
    let order: Vec<&str> = stored["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["content"].as_str().unwrap())
        .collect();
    assert_eq!(
        order,
        [
            "first question",
            "first answer takes a while",
            "second question",
            "second answer"
        ]
    );
}

/// The seq the reply to `ack` was stored under.
async fn socket_final_seq(
    app: &crate::helpers::TestApp,
    id: &str,
    token: &str,
    ack: &Value,
) -> Option<u64> {
    let stored = app.conversation(id, token).await;
    stored["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == ack["reply_id"])
        .and_then(|m| m["seq"].as_u64())
}

#[tokio::test]
async fn replies_beyond_the_servers_generation_cap_fail_with_overloaded() {
    let app = spawn_app_with(|config| config.max_concurrent_generations = 1).await;
    app.upstream.push(Script::slow(
        &["slow", " but", " sure"],
        Duration::from_millis(400),
    ));
    let token = app.register("cap@example.com").await;
    let (mut first, _) = app.chat(&token, None).await;
    let (mut second, _) = app.chat(&token, None).await;
    let running = send_text(&mut first, "take the only slot", Some("g-1")).await;
    // The first reply is generating once its first delta arrives.
    loop {
        let event = first.next_event().await;
        if event["type"] == "delta" {
            break;
        }
    }
    let refused = send_text(&mut second, "and me", Some("g-2")).await;
    let events = second
        .reply_events(refused["reply_id"].as_str().unwrap())
        .await;
    let error = events
        .iter()
        .find(|e| e["type"] == "error")
        .expect("an error");
    assert_eq!(error["code"], "overloaded");
    assert_eq!(events.last().unwrap()["status"], "error");
    // The running reply is unaffected.
    let done = first
        .reply_events(running["reply_id"].as_str().unwrap())
        .await;
    assert_eq!(done.last().unwrap()["status"], "complete");
}

#[tokio::test]
async fn resume_requests_are_rate_limited_per_socket() {
    let app = spawn_app_with(|config| config.resumes_per_minute_per_socket = 2).await;
    let token = app.register("resumes@example.com").await;
    let (mut socket, ready) = app.chat(&token, None).await;
    let last_seq = ready["last_seq"].clone();
    for _ in 0..3 {
        socket
            .send_json(json!({ "type": "resume", "last_seq": last_seq }))
            .await;
    }
    socket.send_json(json!({ "type": "ping" })).await;
    let mut refusals = 0;
    loop {
        let event = socket.next_event().await;
        if event["type"] == "pong" {
            break;
        }
        if event["type"] == "error" {
            assert_eq!(event["code"], "rate_limited", "{event}");
            refusals += 1;
        }
    }
    assert_eq!(refusals, 1, "the third resume in a minute is refused");
}

#[tokio::test]
async fn a_resume_from_further_back_than_max_replay_events_must_resync() {
    let app = spawn_app_with(|config| {
        config.max_replay_events = 3;
        config.replay_linger_secs = 0;
    })
    .await;
    let token = app.register("far-back@example.com").await;
    let mut conversation = Value::Null;
    for turn in 0..3 {
        app.upstream.push(Script::tokens(&["ok"]));
        let body: Value = app
            .post_json(
                "/api/messages",
                &token,
                json!({ "conversation_id": conversation, "content": format!("turn {turn}") }),
            )
            .await
            .json()
            .await
            .unwrap();
        conversation = body["conversation_id"].clone();
    }
    let id = conversation.as_str().unwrap();
    // Six stored messages after seq 0: more than three events to replay.
    let url = app.ws_url(&format!(
        "/api/v1/chat/ws?token={token}&conversationId={id}&last_seq=0"
    ));
    let mut socket = crate::helpers::Socket::connect(&url).await;
    assert_eq!(socket.next_event().await["type"], "ready");
    let event = socket.next_event().await;
    assert_eq!(event["code"], "resync_required", "{event}");
    // A recent gap still replays exactly.
    let stored = app.conversation(id, &token).await;
    let last = stored["messages"].as_array().unwrap().last().unwrap()["seq"]
        .as_u64()
        .unwrap();
    let url = app.ws_url(&format!(
        "/api/v1/chat/ws?token={token}&conversationId={id}&last_seq={}",
        last - 2
    ));
    let mut socket = crate::helpers::Socket::connect(&url).await;
    assert_eq!(socket.next_event().await["type"], "ready");
    // From memory if the reply's channel is still held (its delta, then
    // the final message), else from storage (the final message alone):
    // either way each seq after the gap once, in order, ending with it.
    let mut seqs = Vec::new();
    loop {
        let replayed = socket.next_event().await;
        seqs.push(replayed["seq"].as_u64().expect("a numbered event"));
        if replayed["type"] == "message" {
            break;
        }
        assert_eq!(replayed["type"], "delta", "{replayed}");
    }
    assert_eq!(seqs.last(), Some(&last));
    assert!(
        seqs.windows(2).all(|pair| pair[0] + 1 == pair[1]),
        "{seqs:?}"
    );
    assert!(seqs[0] > last - 2, "{seqs:?}");
}

#[tokio::test]
async fn json_audio_faster_than_real_time_beyond_the_burst_closes_the_socket() {
    let app = spawn_app_with(|config| {
        config.audio.input_burst_secs = 0.5;
        config.audio.max_input_speed = 1.0;
    })
    .await;
    let token = app.register("json-flood@example.com").await;
    let (mut socket, _) = app.chat(&token, None).await;
    // One second of silence per event, sent at once: twice the burst.
    let second = base64_pcm(16_000);
    for _ in 0..3 {
        socket
            .send_json(json!({ "type": "audio", "data": second }))
            .await;
    }
    let closed = loop {
        match socket.next_event_or_close().await {
            Ok(event) => assert_ne!(event["type"], "transcript", "{event}"),
            Err(closed) => break closed,
        }
    };
    assert_eq!(closed.code, Some(1008));
    assert_eq!(closed.reason, "audio rate limit exceeded");
}

/// `samples` of silence as base64 PCM16.
fn base64_pcm(samples: usize) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(vec![0u8; samples * 2])
}

#[tokio::test]
async fn conversations_are_found_by_title_or_by_what_was_said() {
    let app = spawn_app().await;
    let token = app.register("search@example.com").await;
    let mut ids = Vec::new();
    for (question, answer) in [
        ("Plan a trip to Lisbon", "Try the trams."),
        ("Bake bread", "Use 100% rye."),
    ] {
        app.upstream.push(Script::tokens(&[answer]));
        let body: Value = app
            .post_json("/api/messages", &token, json!({ "content": question }))
            .await
            .json()
            .await
            .unwrap();
        ids.push(body["conversation_id"].clone());
    }
    let found = |q: &str| {
        let path = format!("/api/conversations?q={}", urlencode(q));
        let app = &app;
        let token = token.clone();
        async move {
            let list: Value = app.get(&path, &token).await.json().await.unwrap();
            list["conversations"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c["id"].clone())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        found("lisbon").await,
        [ids[0].clone()],
        "by title, any case"
    );
    assert_eq!(found("TRAMS").await, [ids[0].clone()], "by a reply's text");
    assert_eq!(
        found("100%").await,
        [ids[1].clone()],
        "wildcards are literal"
    );
    assert!(found("%").await.len() == 1);
    assert!(found("nothing like this").await.is_empty());
    assert_eq!(found("").await.len(), 2, "an empty search lists everything");
    let other = app.register("someone-else@example.com").await;
    let theirs: Value = app
        .get("/api/conversations?q=lisbon", &other)
        .await
        .json()
        .await
        .unwrap();
    assert!(theirs["conversations"].as_array().unwrap().is_empty());
    let too_long = app
        .get(&format!("/api/conversations?q={}", "x".repeat(201)), &token)
        .await;
    assert_eq!(too_long.status(), 400);
}

fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}
