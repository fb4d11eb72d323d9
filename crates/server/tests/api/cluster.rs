//! Cluster mode: two or three real nodes on one PostgreSQL database and one
//! NATS server. Events of a conversation reach every node's sockets under
//! the same seqs, a client resumes on any node, a message sent through any
//! node is stored once and answered in order.

use std::time::Duration;

use serde_json::{json, Value};

use crate::{
    cluster_nodes::spawn_cluster,
    fake_openai::Script,
    helpers::{concat_deltas, send_text, seq, slow_script, Socket, TestApp},
};

/// A chat socket on `node` for conversation `id`, resuming after `last_seq`.
async fn open(node: &TestApp, token: &str, id: &str, last_seq: Option<u64>) -> Socket {
    let mut path = format!("/api/v1/chat/ws?token={token}&conversationId={id}");
    if let Some(last_seq) = last_seq {
        path.push_str(&format!("&last_seq={last_seq}"));
    }
    let mut socket = Socket::connect(&node.ws_url(&path)).await;
    let ready = socket.next_event().await;
    assert_eq!(ready["type"], "ready", "{ready}");
    socket
}

/// Send a `text` with `client_id` and return its own `ack` (other
/// clients' acks of the conversation may come first).
async fn send_for_ack(socket: &mut Socket, content: &str, client_id: &str) -> Value {
    socket
        .send_json(json!({ "type": "text", "content": content, "client_id": client_id }))
        .await;
    loop {
        let event = socket.next_event().await;
        assert_ne!(event["type"], "error", "unexpected error: {event}");
        if event["type"] == "ack" && event["client_id"] == client_id {
            return event;
        }
    }
}

/// Send a first message on `node` and wait for its reply: the conversation
/// is then stored. Returns its id.
async fn conversation_with_one_turn(node: &TestApp, token: &str) -> String {
    let (mut socket, ready) = node.chat(token, None).await;
    let id = ready["conversation_id"].as_str().unwrap().to_owned();
    let ack = send_text(&mut socket, "hello", None).await;
    socket.reply_events(ack["reply_id"].as_str().unwrap()).await;
    id
}

#[tokio::test]
async fn a_reply_on_one_node_reaches_a_watcher_on_another_event_for_event() {
    let cluster = spawn_cluster(3).await;
    let (first, third) = (&cluster.nodes[0], &cluster.nodes[2]);
    let token = first.register("fanout@example.com").await;
    let id = conversation_with_one_turn(first, &token).await;

    let mut sender = open(first, &token, &id, None).await;
    let mut watcher = open(third, &token, &id, None).await;
    cluster.upstream.push(slow_script(20, 10));
    let ack = send_text(&mut sender, "tell me more", Some("fan-1")).await;
    let reply_id = ack["reply_id"].as_str().unwrap().to_owned();
    let mut sent = vec![ack];
    sent.extend(sender.reply_events(&reply_id).await);
    let watched = watcher.reply_events(&reply_id).await;
    // The watcher saw the ack too, first.
    let watched_from_ack: Vec<Value> = watched
        .iter()
        .skip_while(|event| event["type"] != "ack")
        .cloned()
        .collect();
    assert_eq!(
        watched_from_ack, sent,
        "the same events, seqs and order on both nodes"
    );
    let seqs: Vec<u64> = sent.iter().map(seq).collect();
    let expected: Vec<u64> = (seqs[0]..seqs[0] + seqs.len() as u64).collect();
    assert_eq!(seqs, expected, "numbered without gaps");
    assert_eq!(sent.last().unwrap()["status"], "complete");
    cluster.finish().await;
}

#[tokio::test]
async fn conversation_list_changes_reach_the_users_sockets_on_every_node() {
    let cluster = spawn_cluster(2).await;
    let (first, second) = (&cluster.nodes[0], &cluster.nodes[1]);
    let token = first.register("lists@example.com").await;
    let (mut tab, _) = second.chat(&token, None).await;

    let created: Value = first
        .post_json(
            "/api/conversations",
            &token,
            json!({ "title": "made on one" }),
        )
        .await
        .json()
        .await
        .unwrap();
    let event = tab.next_event().await;
    assert_eq!(
        (
            event["type"].as_str(),
            event["action"].as_str(),
            &event["conversation_id"]
        ),
        (Some("conversation"), Some("created"), &created["id"])
    );
    let path = format!("/api/conversations/{}", created["id"].as_str().unwrap());
    let renamed = first
        .http
        .patch(first.url(&path))
        .bearer_auth(&token)
        .json(&json!({ "title": "renamed on one" }))
        .send()
        .await
        .unwrap();
    assert_eq!(renamed.status(), 200);
    let event = tab.next_event().await;
    assert_eq!(
        (event["action"].as_str(), event["title"].as_str()),
        (Some("renamed"), Some("renamed on one"))
    );
    let deleted = first
        .http
        .delete(first.url(&path))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 204);
    assert_eq!(tab.next_event().await["action"], "deleted");
    cluster.finish().await;
}

#[tokio::test]
async fn a_client_cut_mid_reply_resumes_on_another_node_exactly_once() {
    let cluster = spawn_cluster(2).await;
    let (first, second) = (&cluster.nodes[0], &cluster.nodes[1]);
    let token = first.register("move@example.com").await;
    let id = conversation_with_one_turn(first, &token).await;

    let mut socket = open(first, &token, &id, None).await;
    cluster.upstream.push(slow_script(40, 15));
    let ack = send_text(&mut socket, "a long answer please", Some("m-1")).await;
    let reply_id = ack["reply_id"].as_str().unwrap().to_owned();
    let mut before = vec![ack];
    while before.len() < 6 {
        before.push(socket.next_event().await);
    }
    let last_seen = seq(before.last().unwrap());
    drop(socket);
    tokio::time::sleep(Duration::from_millis(100)).await;

    let mut socket = open(second, &token, &id, Some(last_seen)).await;
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
    cluster.finish().await;
}

#[tokio::test]
async fn a_resend_through_another_node_gets_the_original_ack() {
    let cluster = spawn_cluster(2).await;
    let (first, second) = (&cluster.nodes[0], &cluster.nodes[1]);
    let token = first.register("resend@example.com").await;
    let id = conversation_with_one_turn(first, &token).await;

    let mut socket = open(first, &token, &id, None).await;
    let ack = send_text(&mut socket, "only once", Some("once-1")).await;
    socket.reply_events(ack["reply_id"].as_str().unwrap()).await;
    drop(socket);

    let mut socket = open(second, &token, &id, Some(seq(&ack) + 1)).await;
    let again = send_text(&mut socket, "only once", Some("once-1")).await;
    assert_eq!(again["message_id"], ack["message_id"]);
    assert_eq!(again["seq"], ack["seq"]);
    let conversation = second.conversation(&id, &token).await;
    let copies = conversation["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["content"] == "only once")
        .count();
    assert_eq!(copies, 1, "stored once");
    cluster.finish().await;
}

#[tokio::test]
async fn a_message_through_another_node_is_stored_acked_and_answered_in_order() {
    let cluster = spawn_cluster(2).await;
    let (first, second) = (&cluster.nodes[0], &cluster.nodes[1]);
    let token = first.register("order@example.com").await;
    let id = conversation_with_one_turn(first, &token).await;

    let mut on_first = open(first, &token, &id, None).await;
    let mut on_second = open(second, &token, &id, None).await;
    cluster.upstream.push(slow_script(30, 15));
    cluster
        .upstream
        .push(Script::tokens(&["second", " answer"]));
    let first_ack = send_text(&mut on_first, "first question", Some("q-1")).await;
    // While the first reply streams on node one, ask through node two.
    on_first.next_event().await;
    let second_ack = send_for_ack(&mut on_second, "second question", "q-2").await;
    assert!(seq(&second_ack) > seq(&first_ack));

    let first_reply = first_ack["reply_id"].as_str().unwrap();
    let second_reply = second_ack["reply_id"].as_str().unwrap();
    let mut seen = Vec::new();
    loop {
        let event = on_first.next_event().await;
        let done = event["type"] == "message" && event["message_id"] == second_reply;
        seen.push(event);
        if done {
            break;
        }
    }
    let seqs: Vec<u64> = seen.iter().map(seq).collect();
    assert!(
        seqs.windows(2).all(|pair| pair[1] == pair[0] + 1),
        "in order, no gaps: {seqs:?}"
    );
    let finals: Vec<&str> = seen
        .iter()
        .filter(|event| event["type"] == "message")
        .map(|event| event["message_id"].as_str().unwrap())
        .collect();
    assert_eq!(finals, [first_reply, second_reply], "answered in order");
    assert_eq!(seen.last().unwrap()["content"], "second answer");
    cluster.finish().await;
}

#[tokio::test]
async fn sockets_per_user_are_counted_across_nodes() {
    let cluster = crate::cluster_nodes::spawn_cluster_with(2, |config| {
        config.max_sockets_per_user = 2;
    })
    .await;
    let (first, second) = (&cluster.nodes[0], &cluster.nodes[1]);
    let token = first.register("capped@example.com").await;
    let (on_first, _) = first.chat(&token, None).await;
    let (_on_second, _) = second.chat(&token, None).await;
    // A third socket, on either node, is one too many.
    for node in [first, second] {
        let mut refused =
            Socket::connect(&node.ws_url(&format!("/api/v1/chat/ws?token={token}"))).await;
        let closed = refused.closed().await;
        assert_eq!(
            (closed.code, closed.reason.as_str()),
            (Some(1008), "Too many connections")
        );
    }
    // Another user is not affected.
    let other = second.register("other@example.com").await;
    let _ = second.chat(&other, None).await;
    // Once one closes, the other node has room again.
    drop(on_first);
    let mut opened = false;
    for _ in 0..50 {
        let mut socket =
            Socket::connect(&second.ws_url(&format!("/api/v1/chat/ws?token={token}"))).await;
        match socket.next_event_or_close().await {
            Ok(ready) if ready["type"] == "ready" => {
                opened = true;
                break;
            }
            Ok(other) => panic!("unexpected {other}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    assert!(opened, "a socket opens once another one closed");
    cluster.finish().await;
}

#[tokio::test]
async fn an_edit_and_a_regenerate_through_another_node_are_stored_as_branches() {
    let cluster = spawn_cluster(2).await;
    let (first, second) = (&cluster.nodes[0], &cluster.nodes[1]);
    let token = first.register("branch-nodes@example.com").await;
    let id = conversation_with_one_turn(first, &token).await;
    let stored = first.conversation(&id, &token).await;
    let (question, reply) = (&stored["messages"][0], &stored["messages"][1]);

    let mut on_first = open(first, &token, &id, None).await;
    let mut on_second = open(second, &token, &id, None).await;
    cluster.upstream.push(slow_script(30, 15));
    cluster.upstream.push(Script::tokens(&["edited"]));
    cluster.upstream.push(Script::tokens(&["again"]));
    send_text(&mut on_first, "a long one", Some("n-1")).await;
    // While node one holds the conversation, edit and regenerate through node two.
    on_first.next_event().await;
    on_second
        .send_json(json!({ "type": "text", "content": "hello there", "client_id": "n-2", "parent_id": null }))
        .await;
    let edit = loop {
        let event = on_second.next_event().await;
        assert_ne!(event["type"], "error", "unexpected error: {event}");
        if event["type"] == "ack" && event["client_id"] == "n-2" {
            break event;
        }
    };
    on_second
        .send_json(json!({ "type": "regenerate", "message_id": reply["id"] }))
        .await;
    let edit_reply = edit["reply_id"].as_str().unwrap();
    let mut finals = Vec::new();
    while finals.len() < 3 {
        let event = on_second.next_event().await;
        assert_ne!(event["type"], "error", "unexpected error: {event}");
        if event["type"] == "message" {
            finals.push(event);
        }
    }
    assert_eq!(finals[1]["message_id"], edit_reply);
    assert_eq!(finals[1]["content"], "edited");
    assert_eq!(finals[2]["content"], "again");

    // The regenerate came last: its branch is the one shown.
    let shown = second.conversation(&id, &token).await;
    let messages = shown["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 2, "{shown}");
    assert_eq!(messages[0]["id"], question["id"]);
    assert_eq!(
        messages[0]["sibling_ids"],
        json!([question["id"], edit["message_id"]])
    );
    assert_eq!(messages[1]["content"], "again");
    assert_eq!(messages[1]["sibling_ids"][0], reply["id"]);
    assert_eq!(messages[1]["sibling_count"], 2);
    let prompts = cluster.upstream.requests();
    let regenerated: Vec<&str> = prompts.last().unwrap()["messages"]
        .as_array()
        .unwrap()
        .iter()
        .skip(1)
        .map(|m| m["content"].as_str().unwrap())
        .collect();
    assert_eq!(
        regenerated,
        ["hello"],
        "the regenerated reply read only its question"
    );
    cluster.finish().await;
}
