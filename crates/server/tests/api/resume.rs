use std::time::Duration;

use serde_json::json;

use crate::helpers::{
    concat_deltas, send_text, seq, slow_script, spawn_app, spawn_app_with, Socket,
};

#[tokio::test]
async fn reconnecting_mid_reply_delivers_the_rest_exactly_once_and_in_order() {
    let app = spawn_app().await;
    app.upstream.push(slow_script(40, 15));
    let token = app.register("resume@example.com").await;
    let (mut socket, ready) = app.chat(&token, None).await;
    let id = ready["conversation_id"].as_str().unwrap().to_owned();
    let ack = send_text(&mut socket, "a long answer please", Some("r-1")).await;
    let reply_id = ack["reply_id"].as_str().unwrap().to_owned();
    let mut before = Vec::new();
    while before.len() < 5 {
        before.push(socket.next_event().await);
    }
    let last_seen = seq(before.last().unwrap());
    drop(socket);
    // Let the reply run on while nobody is connected.
    tokio::time::sleep(Duration::from_millis(150)).await;

    let path = format!("/api/v1/chat/ws?token={token}&conversationId={id}&last_seq={last_seen}");
    let mut socket = Socket::connect(&app.ws_url(&path)).await;
    assert_eq!(socket.next_event().await["type"], "ready");
    let after = socket.reply_events(&reply_id).await;
    let seqs: Vec<u64> = after.iter().map(seq).collect();
    let expected: Vec<u64> = (last_seen + 1..=last_seen + after.len() as u64).collect();
    assert_eq!(seqs, expected, "no gap, no duplicate");
    let final_message = after.last().unwrap();
    assert_eq!(final_message["status"], "complete");
    let mut all = before;
    all.extend(after.iter().cloned());
    assert_eq!(
        concat_deltas(&all),
        final_message["content"].as_str().unwrap()
    );
    assert_eq!(
        final_message["content"]
            .as_str()
            .unwrap()
            .split_whitespace()
            .count(),
        40
    );
}

#[tokio::test]
async fn resume_beyond_the_memory_ring_replays_stored_messages() {
    let app = spawn_app_with(|config| config.replay_buffer_events = 4).await;
    let token = app.register("ring@example.com").await;
    let (mut socket, ready) = app.chat(&token, None).await;
    let id = ready["conversation_id"].as_str().unwrap().to_owned();
    let mut finals = Vec::new();
    for text in ["one", "two"] {
        let ack = send_text(&mut socket, text, None).await;
        let events = socket.reply_events(ack["reply_id"].as_str().unwrap()).await;
        finals.push(events.last().unwrap().clone());
    }
    drop(socket);

    // Keep a subscriber so the channel (and its ring) stays live, then resume from 0.
    let (_keeper, _) = app.chat(&token, Some(&id)).await;
    let path = format!("/api/v1/chat/ws?token={token}&conversationId={id}&last_seq=0");
    let mut socket = Socket::connect(&app.ws_url(&path)).await;
    let ready = socket.next_event().await;
    let head = ready["last_seq"].as_u64().unwrap();
    let mut replayed = Vec::new();
    while replayed.last().map(seq) != Some(head) {
        replayed.push(socket.next_event().await);
    }
    let kinds: Vec<&str> = replayed
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["ack", "message", "ack", "message"]);
    assert_eq!(replayed[0]["content"], "one");
    assert_eq!(replayed[1], finals[0]);
    assert_eq!(replayed[3], finals[1]);
    let seqs: Vec<u64> = replayed.iter().map(seq).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "in order: {seqs:?}");
}

#[tokio::test]
async fn resume_after_a_restart_replays_from_the_database() {
    let app = spawn_app().await;
    let token = app.register("restart-resume@example.com").await;
    let (mut socket, ready) = app.chat(&token, None).await;
    let id = ready["conversation_id"].as_str().unwrap().to_owned();
    let ack = send_text(&mut socket, "remember", None).await;
    let events = socket.reply_events(ack["reply_id"].as_str().unwrap()).await;
    drop(socket);
    let app = app.restart().await;
    let path = format!(
        "/api/v1/chat/ws?token={token}&conversationId={id}&last_seq={}",
        seq(&ack)
    );
    let mut socket = Socket::connect(&app.ws_url(&path)).await;
    socket.next_event().await; // ready
    let replayed = socket.next_event().await;
    assert_eq!(&replayed, events.last().unwrap());
}

#[tokio::test]
async fn an_unreplayable_gap_says_resync_required() {
    let app = spawn_app().await;
    let token = app.register("resync@example.com").await;
    let (mut first, ready) = app.chat(&token, None).await;
    let id = ready["conversation_id"].as_str().unwrap();
    let before = send_text(&mut first, "before", None).await;
    let reply = first
        .reply_events(before["reply_id"].as_str().unwrap())
        .await;
    let last_seq = seq(reply.last().unwrap());
    let path = format!("/api/v1/chat/ws?token={token}&conversationId={id}&last_seq=99");
    let mut socket = Socket::connect(&app.ws_url(&path)).await;
    assert_eq!(socket.next_event().await["type"], "ready");
    let error = socket.next_event().await;
    assert_eq!(error["code"], "resync_required");
    // The socket still works after the client reloads.
    let ack = send_text(&mut socket, "after resync", None).await;
    assert_eq!(seq(&ack), last_seq + 1);
    let bad = format!("/api/v1/chat/ws?token={token}&conversationId={id}&last_seq=minus-one");
    let closed = Socket::connect(&app.ws_url(&bad)).await.closed().await;
    assert_eq!(
        (closed.code, closed.reason.as_str()),
        (Some(1008), "Invalid last_seq")
    );
}

#[tokio::test]
async fn a_resume_event_on_an_open_socket_replays_after_the_given_seq() {
    let app = spawn_app().await;
    let token = app.register("resume-event@example.com").await;
    let (mut socket, _) = app.chat(&token, None).await;
    let ack = send_text(&mut socket, "hi", None).await;
    let events = socket.reply_events(ack["reply_id"].as_str().unwrap()).await;
    socket
        .send_json(json!({ "type": "resume", "last_seq": seq(&ack) }))
        .await;
    let mut replayed = Vec::new();
    for _ in 0..events.len() {
        replayed.push(socket.next_event().await);
    }
    assert_eq!(replayed, events);
}
