//! Crash consistency: the real binary killed with SIGKILL mid-reply, then
//! restarted on the same database. Event numbering must never go backwards,
//! and the repaired reply keeps what the client already saw.

use std::time::Duration;

use serde_json::{json, Value};

use crate::{
    fake_openai::{FakeOpenAi, Script},
    helpers::{concat_deltas, send_text, test_data, Socket},
    process_server::Server,
};

/// Save the streamed text with every delta, so the test knows exactly what
/// the repair must keep.
const CHECKPOINT_EVERY_DELTA: &[(&str, &str)] = &[("COLLOQUY_REPLY_CHECKPOINT_MS", "0")];

#[tokio::test]
async fn a_reply_killed_mid_stream_is_repaired_with_its_text_and_a_later_seq() {
    let upstream = FakeOpenAi::start().await;
    upstream.push(Script::StallAfter(
        ["One", " two", " three", " four", " five"]
            .map(String::from)
            .to_vec(),
    ));
    let data = test_data().await;
    let http = reqwest::Client::new();

    let server = Server::start(
        data.dir.path(),
        &data.database.url,
        &upstream,
        CHECKPOINT_EVERY_DELTA,
    );
    let registered: Value = http
        .post(server.url("/auth/register"))
        .json(&json!({ "email": "crash@example.com", "password": "correct horse battery" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = registered["access_token"].as_str().unwrap().to_owned();
    let mut socket =
        Socket::connect(&server.ws_url(&format!("/api/v1/chat/ws?token={token}"))).await;
    let ready = socket.next_event().await;
    let conversation = ready["conversation_id"].as_str().unwrap().to_owned();
    let ack = send_text(&mut socket, "count to five", Some("c-1")).await;
    let reply_id = ack["reply_id"].as_str().unwrap().to_owned();
    let mut seen = Vec::new();
    while seen.len() < 5 {
        let event = socket.next_event().await;
        if event["type"] == "delta" {
            seen.push(event);
        }
    }
    let streamed = concat_deltas(&seen);
    let last_seen = seen.last().unwrap()["seq"].as_u64().unwrap();
    assert_eq!(streamed, "One two three four five");

    server.kill();
    drop(socket);

    let server = Server::start(
        data.dir.path(),
        &data.database.url,
        &upstream,
        CHECKPOINT_EVERY_DELTA,
    );
    let mut socket = Socket::connect(&server.ws_url(&format!(
        "/api/v1/chat/ws?token={token}&conversationId={conversation}&last_seq={last_seen}"
    )))
    .await;
    let ready = socket.next_event().await;
    assert_eq!(ready["type"], "ready");
    assert!(
        ready["last_seq"].as_u64().unwrap() > last_seen,
        "numbering went backwards: {ready} after seq {last_seen}"
    );
    let repaired = tokio::time::timeout(Duration::from_secs(10), socket.next_event())
        .await
        .expect("the repaired reply is replayed");
    assert_eq!(repaired["type"], "message", "{repaired}");
    assert_eq!(repaired["message_id"], reply_id.as_str());
    assert_eq!(repaired["status"], "interrupted");
    assert_eq!(repaired["content"], streamed.as_str());
    assert!(repaired["seq"].as_u64().unwrap() > last_seen);

    // The acked user message and the repaired reply are stored, in order.
    let get = |path: String| {
        let request = http.get(server.url(&path)).bearer_auth(&token).send();
        async move { request.await.unwrap().json::<Value>().await.unwrap() }
    };
    let stored = get(format!("/api/conversations/{conversation}")).await;
    let messages = stored["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 2, "{stored}");
    assert_eq!(messages[0]["id"], ack["message_id"]);
    assert_eq!(messages[1]["content"], streamed.as_str());

    // The repaired reply is metered: one reply, its tokens estimated from
    // the question and the text the client saw.
    let usage = get("/api/usage".to_owned()).await;
    let days = usage["days"].as_array().unwrap();
    assert_eq!(days.len(), 1, "{usage}");
    assert_eq!(days[0]["messages"], 1, "{usage}");
    assert!(days[0]["prompt_tokens"].as_i64().unwrap() > 0, "{usage}");
    assert!(
        days[0]["completion_tokens"].as_i64().unwrap() > 0,
        "{usage}"
    );

    // The conversation goes on with numbers after the repaired reply.
    upstream.push(Script::tokens(&["again"]));
    let next = send_text(&mut socket, "and again", Some("c-2")).await;
    assert!(next["seq"].as_u64().unwrap() > repaired["seq"].as_u64().unwrap());
}
