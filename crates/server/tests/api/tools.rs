//! The agent loop end to end: the fake upstream calls tools in OpenAI's
//! streamed format, the server runs them, publishes `tool` events, sends
//! the results back and streams the answer, on every text transport.

use std::sync::Arc;

use async_trait::async_trait;
use colloquy::tools::{Tool, ToolContext, ToolFailure};
use colloquy_ai::ToolDefinition;
use serde_json::{json, Value};
use tokio::sync::Semaphore;

use crate::{
    fake_openai::Script,
    helpers::{
        concat_deltas, send_text, seq, spawn_app, spawn_app_with, sse_events, Socket, TestApp,
    },
};

/// A tool of the test's own, registered through the public registry as an
/// embedding program would: it finishes only when the test opens the gate.
struct Gate {
    permits: Arc<Semaphore>,
}

#[async_trait]
impl Tool for Gate {
    fn definition(&self) -> ToolDefinition {
        ToolDefinition {
            name: "wait_for_gate".into(),
            description: "Waits until the gate opens.".into(),
            parameters: json!({ "type": "object" }),
        }
    }

    async fn call(&self, _: &ToolContext, _: Value) -> Result<Value, ToolFailure> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| ToolFailure::new("closed", "gate closed"))?;
        Ok(json!({ "opened": true }))
    }
}

/// Register a [`Gate`] on `app`; add permits to the semaphore to open it.
pub fn gate(app: &TestApp) -> Arc<Semaphore> {
    let permits = Arc::new(Semaphore::new(0));
    app.state
        .turns
        .tools()
        .register(Arc::new(Gate {
            permits: permits.clone(),
        }))
        .unwrap();
    permits
}

/// Script "What is 6 times 7?": a `calculate` call, then the answer.
fn six_times_seven(app: &TestApp) {
    app.upstream.push(Script::tool_calls(&[(
        "call_calc",
        "calculate",
        r#"{"expression": "6 * 7"}"#,
    )]));
    app.upstream.push(Script::tokens(&["6 times 7", " is 42."]));
}

fn tool_events<'a>(events: &'a [Value], status: &str) -> Vec<&'a Value> {
    events
        .iter()
        .filter(|e| e["type"] == "tool" && e["status"] == status)
        .collect()
}

/// The events from the `ack` to the final message: calculate starts and
/// ends, then the answer streams, all numbered one after another.
fn assert_calculated_then_answered(events: &[Value]) {
    let kinds: Vec<String> = events
        .iter()
        .map(|e| match e["type"].as_str().unwrap() {
            "tool" => format!("tool:{}", e["status"].as_str().unwrap()),
            kind => kind.to_owned(),
        })
        .collect();
    assert_eq!(
        kinds,
        ["ack", "tool:start", "tool:end", "delta", "delta", "message"],
        "{events:?}"
    );
    let start = &events[1];
    assert_eq!(start["name"], "calculate");
    assert_eq!(start["call_id"], "call_calc");
    assert_eq!(start["arguments"], json!({ "expression": "6 * 7" }));
    assert_eq!(start["message_id"], events[0]["reply_id"]);
    let end = &events[2];
    assert_eq!(end["call_id"], "call_calc");
    assert_eq!(end["result"]["result"], 42);
    assert!(end.get("error").is_none());
    assert!(end["duration_ms"].is_u64());
    let final_message = events.last().unwrap();
    assert_eq!(final_message["content"], "6 times 7 is 42.");
    assert_eq!(concat_deltas(events), "6 times 7 is 42.");
    let seqs: Vec<u64> = events.iter().map(seq).collect();
    let first = seqs[0];
    assert_eq!(
        seqs,
        (first..first + 6).collect::<Vec<_>>(),
        "one seq each, in order"
    );
}

/// The upstream's second request carries the call and its result in
/// OpenAI's format, after the question.
fn assert_results_went_back(app: &TestApp) {
    let requests = app.upstream.requests();
    assert_eq!(requests.len(), 2);
    let offered: Vec<&str> = requests[0]["tools"]
        .as_array()
        .expect("tools offered")
        .iter()
        .map(|tool| tool["function"]["name"].as_str().unwrap())
        .collect();
    for name in ["calculate", "get_current_time", "search_conversations"] {
        assert!(offered.contains(&name), "{name} offered: {offered:?}");
    }
    assert_eq!(requests[0]["tools"][0]["type"], "function");
    let messages = requests[1]["messages"].as_array().unwrap();
    let n = messages.len();
    assert_eq!(messages[n - 3]["role"], "user");
    assert_eq!(
        messages[n - 2],
        json!({
            "role": "assistant",
            "content": null,
            "tool_calls": [{
                "id": "call_calc",
                "type": "function",
                "function": { "name": "calculate", "arguments": "{\"expression\": \"6 * 7\"}" },
            }],
        })
    );
    assert_eq!(messages[n - 1]["role"], "tool");
    assert_eq!(messages[n - 1]["tool_call_id"], "call_calc");
    let result: Value = serde_json::from_str(messages[n - 1]["content"].as_str().unwrap()).unwrap();
    assert_eq!(result["result"], 42);
}

#[tokio::test]
async fn what_is_6_times_7_runs_calculate_then_streams_the_answer_on_the_socket() {
    let app = spawn_app().await;
    six_times_seven(&app);
    let token = app.register("calc@example.com").await;
    let (mut socket, ready) = app.chat(&token, None).await;
    let ack = send_text(&mut socket, "What is 6 times 7?", None).await;
    let mut events = vec![ack.clone()];
    events.extend(socket.reply_events(ack["reply_id"].as_str().unwrap()).await);
    assert_calculated_then_answered(&events);
    assert_results_went_back(&app);

    // The conversation shows the call, and the next turn's history has it.
    let id = ready["conversation_id"].as_str().unwrap();
    let conversation = app.conversation(id, &token).await;
    let calls = conversation["tool_calls"].as_array().unwrap();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0]["status"], "end");
    assert_eq!(calls[0]["result"]["result"], 42);
    assert_eq!(calls[0]["message_id"], ack["reply_id"]);
    let next = send_text(&mut socket, "And plus one?", None).await;
    socket
        .reply_events(next["reply_id"].as_str().unwrap())
        .await;
    let third = &app.upstream.requests()[2];
    let roles: Vec<&str> = third["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["role"].as_str().unwrap())
        .collect();
    assert_eq!(
        roles,
        ["system", "user", "assistant", "tool", "assistant", "user"]
    );
    assert_eq!(third["messages"][2]["tool_calls"][0]["id"], "call_calc");
}

#[tokio::test]
async fn what_is_6_times_7_streams_tool_events_over_sse_and_answers_over_http() {
    let app = spawn_app().await;
    let token = app.register("calc-http@example.com").await;
    six_times_seven(&app);
    let response = app
        .http
        .post(app.url("/v2/chat"))
        .bearer_auth(&token)
        .header("accept", "text/event-stream")
        .json(&json!({ "message": "What is 6 times 7?" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let (events, _) = sse_events(response).await;
    assert_eq!(events[0]["type"], "ready");
    assert_calculated_then_answered(&events[1..]);

    six_times_seven(&app);
    let conversation_id = events[0]["conversation_id"].as_str().unwrap();
    let response = app
        .post_json(
            "/api/messages",
            &token,
            json!({ "conversation_id": conversation_id, "content": "What is 6 times 7?" }),
        )
        .await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["assistant_message"]["content"], "6 times 7 is 42.");
    let calls = body["tool_calls"].as_array().unwrap();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0]["name"], "calculate");
    assert_eq!(calls[0]["arguments"]["expression"], "6 * 7");
    assert_eq!(calls[0]["result"]["result"], 42);
}

#[tokio::test]
async fn parallel_unknown_and_invalid_calls_all_end_and_go_back_to_the_model_in_order() {
    let app = spawn_app().await;
    app.upstream.push(Script::tool_calls(&[
        ("c_time", "get_current_time", r#"{"timezone":"Asia/Tokyo"}"#),
        ("c_calc", "calculate", r#"{"expression":"2^10"}"#),
        ("c_rocket", "launch_rockets", "{}"),
        ("c_bad", "calculate", r#"{"expr": 1}"#),
    ]));
    app.upstream.push(Script::tokens(&["Done."]));
    let token = app.register("parallel@example.com").await;
    let (mut socket, _) = app.chat(&token, None).await;
    let ack = send_text(&mut socket, "Several things", None).await;
    let events = socket.reply_events(ack["reply_id"].as_str().unwrap()).await;
    let starts = tool_events(&events, "start");
    let ends = tool_events(&events, "end");
    assert_eq!(starts.len(), 4);
    assert_eq!(ends.len(), 4);
    let end_of = |id: &str| *ends.iter().find(|e| e["call_id"] == id).unwrap();
    assert_eq!(end_of("c_time")["result"]["timezone"], "Asia/Tokyo");
    assert_eq!(end_of("c_calc")["result"]["result"], 1024);
    assert_eq!(end_of("c_rocket")["error"]["code"], "unknown_tool");
    assert_eq!(end_of("c_bad")["error"]["code"], "invalid_arguments");
    assert_eq!(events.last().unwrap()["status"], "complete");

    let second = &app.upstream.requests()[1];
    let messages = second["messages"].as_array().unwrap();
    let results: Vec<&Value> = messages.iter().filter(|m| m["role"] == "tool").collect();
    let ids: Vec<&str> = results
        .iter()
        .map(|m| m["tool_call_id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        ["c_time", "c_calc", "c_rocket", "c_bad"],
        "in call order"
    );
    let rocket: Value = serde_json::from_str(results[2]["content"].as_str().unwrap()).unwrap();
    assert_eq!(rocket["error"]["code"], "unknown_tool");
}

#[tokio::test]
async fn a_slow_tool_times_out_and_the_model_is_told() {
    let app = spawn_app_with(|config| config.tools.tool_timeout_secs = 1).await;
    let _gate = gate(&app);
    app.upstream
        .push(Script::tool_calls(&[("c_slow", "wait_for_gate", "{}")]));
    app.upstream.push(Script::tokens(&["It took too long."]));
    let token = app.register("slow@example.com").await;
    let (mut socket, _) = app.chat(&token, None).await;
    let ack = send_text(&mut socket, "Wait for it", None).await;
    let events = socket.reply_events(ack["reply_id"].as_str().unwrap()).await;
    let ends = tool_events(&events, "end");
    assert_eq!(ends[0]["error"]["code"], "timeout");
    assert_eq!(events.last().unwrap()["content"], "It took too long.");
    let second = &app.upstream.requests()[1];
    let last = second["messages"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert!(last["content"].as_str().unwrap().contains("timeout"));
}

#[tokio::test]
async fn stop_during_a_running_tool_cancels_it_and_interrupts_the_reply() {
    let app = spawn_app().await;
    let _gate = gate(&app);
    app.upstream
        .push(Script::tool_calls(&[("c_wait", "wait_for_gate", "{}")]));
    let token = app.register("stop@example.com").await;
    let (mut socket, _) = app.chat(&token, None).await;
    let ack = send_text(&mut socket, "Wait forever", None).await;
    let start = socket.next_event().await;
    assert_eq!(
        (start["type"].as_str(), start["status"].as_str()),
        (Some("tool"), Some("start"))
    );
    socket.send_json(json!({ "type": "stop" })).await;
    let events = socket.reply_events(ack["reply_id"].as_str().unwrap()).await;
    let end = events.iter().find(|e| e["type"] == "tool").unwrap();
    assert_eq!(end["status"], "end");
    assert_eq!(end["error"]["code"], "cancelled");
    assert_eq!(events.last().unwrap()["status"], "interrupted");
    assert_eq!(app.upstream.requests().len(), 1, "no round after the stop");
}

#[tokio::test]
async fn a_socket_cut_between_start_and_end_gets_the_rest_exactly_once() {
    let app = spawn_app().await;
    let gate = gate(&app);
    app.upstream
        .push(Script::tool_calls(&[("c_wait", "wait_for_gate", "{}")]));
    app.upstream.push(Script::tokens(&["The gate", " opened."]));
    let token = app.register("cut@example.com").await;
    let (mut socket, ready) = app.chat(&token, None).await;
    let id = ready["conversation_id"].as_str().unwrap().to_owned();
    let ack = send_text(&mut socket, "Open the gate", None).await;
    let start = socket.next_event().await;
    assert_eq!(start["status"], "start");
    drop(socket);
    gate.add_permits(1);

    let last_seen = seq(&start);
    let path = format!("/api/v1/chat/ws?token={token}&conversationId={id}&last_seq={last_seen}");
    let mut socket = Socket::connect(&app.ws_url(&path)).await;
    assert_eq!(socket.next_event().await["type"], "ready");
    let rest = socket.reply_events(ack["reply_id"].as_str().unwrap()).await;
    let seqs: Vec<u64> = rest.iter().map(seq).collect();
    assert_eq!(
        seqs,
        (last_seen + 1..=last_seen + rest.len() as u64).collect::<Vec<_>>()
    );
    assert_eq!(
        tool_events(&rest, "start").len(),
        0,
        "the start is not sent again"
    );
    let ends = tool_events(&rest, "end");
    assert_eq!(ends.len(), 1);
    assert_eq!(ends[0]["result"]["opened"], true);
    assert_eq!(rest.last().unwrap()["content"], "The gate opened.");
}

#[tokio::test]
async fn tool_events_are_replayed_from_storage_after_a_restart() {
    let app = spawn_app().await;
    six_times_seven(&app);
    let token = app.register("restart@example.com").await;
    let (mut socket, ready) = app.chat(&token, None).await;
    let id = ready["conversation_id"].as_str().unwrap().to_owned();
    let ack = send_text(&mut socket, "What is 6 times 7?", None).await;
    let live = socket.reply_events(ack["reply_id"].as_str().unwrap()).await;
    drop(socket);
    let app = app.restart().await;

    let after = seq(&ack);
    let path = format!("/api/v1/chat/ws?token={token}&conversationId={id}&last_seq={after}");
    let mut socket = Socket::connect(&app.ws_url(&path)).await;
    assert_eq!(socket.next_event().await["type"], "ready");
    let replayed = socket.reply_events(ack["reply_id"].as_str().unwrap()).await;
    // From storage the deltas are superseded by the final message; the
    // tool events come back exactly as they were sent.
    let live_tools: Vec<&Value> = live.iter().filter(|e| e["type"] == "tool").collect();
    let replayed_tools: Vec<&Value> = replayed.iter().filter(|e| e["type"] == "tool").collect();
    assert_eq!(replayed_tools, live_tools);
    assert_eq!(replayed.len(), 3, "start, end, message: {replayed:?}");
    assert_eq!(replayed.last(), live.last());
}

#[tokio::test]
async fn a_model_that_keeps_calling_tools_stops_at_max_tool_rounds() {
    let app = spawn_app_with(|config| config.tools.max_tool_rounds = 1).await;
    app.upstream.push(Script::tool_calls(&[(
        "c1",
        "calculate",
        r#"{"expression":"1+1"}"#,
    )]));
    app.upstream.push(Script::tool_calls(&[(
        "c2",
        "calculate",
        r#"{"expression":"2+2"}"#,
    )]));
    let token = app.register("rounds@example.com").await;
    let (mut socket, _) = app.chat(&token, None).await;
    let ack = send_text(&mut socket, "Loop", None).await;
    let events = socket.reply_events(ack["reply_id"].as_str().unwrap()).await;
    assert_eq!(
        tool_events(&events, "start").len(),
        1,
        "the second round never runs"
    );
    let error = events.iter().find(|e| e["type"] == "error").unwrap();
    assert_eq!(error["code"], "tool_rounds_exceeded");
    assert_eq!(events.last().unwrap()["status"], "error");
    let requests = app.upstream.requests();
    assert_eq!(requests.len(), 2);
    assert!(requests[0].get("tool_choice").is_none());
    assert_eq!(requests[1]["tool_choice"], "none", "told to answer");
}

#[tokio::test]
async fn search_only_finds_the_callers_own_messages() {
    let app = spawn_app().await;
    let other = app.register("other@example.com").await;
    let (mut theirs, _) = app.chat(&other, None).await;
    let ack = send_text(&mut theirs, "my secret is zebra-42", None).await;
    theirs.reply_events(ack["reply_id"].as_str().unwrap()).await;

    let token = app.register("searcher@example.com").await;
    let (mut socket, _) = app.chat(&token, None).await;
    let ack = send_text(&mut socket, "I like zebra-42 stripes", None).await;
    socket.reply_events(ack["reply_id"].as_str().unwrap()).await;
    app.upstream.push(Script::tool_calls(&[(
        "c_search",
        "search_conversations",
        r#"{"query":"ZEBRA-42"}"#,
    )]));
    app.upstream.push(Script::tokens(&["Found it."]));
    let ack = send_text(&mut socket, "What did I say about zebras?", None).await;
    let events = socket.reply_events(ack["reply_id"].as_str().unwrap()).await;
    let end = tool_events(&events, "end")[0].clone();
    let snippets: Vec<&str> = end["result"]["matches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["snippet"].as_str().unwrap())
        .collect();
    assert!(
        snippets.contains(&"I like zebra-42 stripes"),
        "{snippets:?}"
    );
    assert!(
        snippets.iter().all(|s| !s.contains("secret")),
        "another user's message leaked: {snippets:?}"
    );
}
