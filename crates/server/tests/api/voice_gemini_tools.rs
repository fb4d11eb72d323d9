//! Tools in a Gemini Live voice session: the server declares its tools in
//! the setup, runs the calls Gemini makes (stored, with `tool` events for
//! the spoken reply, replayed like every conversation event), answers with
//! `toolResponse`, and cancels a call Gemini cancels, against the strict
//! fake Live server.

use std::time::Duration;

use serde_json::{json, Value};

use crate::{
    helpers::{seq, Socket, TestApp},
    tools::gate,
    voice_gemini::{
        coached_user,
        fake_gemini_live::{msg, Script, Step},
        gemini_app, newest_conversation_id, open_voice, receive_audio, reply_audio, speak,
        stored_messages,
    },
};

/// Every event of the conversation, replayed from the start on a JSON socket.
async fn replayed_events(app: &TestApp, token: &str) -> Vec<Value> {
    let id = newest_conversation_id(app, token).await;
    let path = format!("/api/v1/chat/ws?token={token}&conversationId={id}&last_seq=0");
    let mut socket = Socket::connect(&app.ws_url(&path)).await;
    let ready = socket.next_event().await;
    let head = ready["last_seq"].as_u64().unwrap();
    let mut events = Vec::new();
    while events.last().map(seq) != Some(head) {
        events.push(socket.next_event().await);
    }
    events
}

async fn conversation(app: &TestApp, token: &str) -> Value {
    let id = newest_conversation_id(app, token).await;
    app.conversation(id, token).await
}

#[tokio::test]
async fn a_gemini_tool_call_runs_on_the_server_and_its_result_goes_back() {
    let answer = reply_audio(200);
    let (app, fake) = gemini_app(vec![Script::new(vec![
        Step::AwaitAudioBytes(6_400),
        Step::Send(msg::input_transcription("What is 6 times 7?")),
        Step::Send(msg::tool_call(&[(
            "call-live-1",
            "calculate",
            json!({"expression": "6 * 7"}),
        )])),
        Step::AwaitToolResponses(1),
        Step::Send(msg::output_transcription("It is 42.")),
        Step::Send(msg::audio(&answer)),
        Step::Send(msg::turn_complete()),
    ])])
    .await;
    let (token, step) = coached_user(&app).await;
    let mut client = open_voice(&app, &token, &step).await;
    speak(&mut client, 400).await;
    let (audio, close) = receive_audio(&mut client, Duration::from_secs(2)).await;
    assert_eq!(close, None);
    assert_eq!(audio, answer, "the answer after the tool is heard");

    let connection = fake.connections()[0].clone();
    assert_eq!(connection.rejected, None);
    let declared: Vec<&str> = connection.setup.as_ref().unwrap()["tools"][0]
        ["functionDeclarations"]
        .as_array()
        .expect("the server's tools are declared")
        .iter()
        .map(|declaration| declaration["name"].as_str().unwrap())
        .collect();
    assert!(declared.contains(&"calculate"), "{declared:?}");
    assert_eq!(
        connection.tool_responses,
        vec![json!({"id": "call-live-1", "name": "calculate",
            "response": {"expression": "6 * 7", "result": 42}})]
    );

    let messages = stored_messages(&app, &token).await;
    assert_eq!(messages.len(), 2, "{messages:?}");
    assert_eq!(messages[1]["content"], "It is 42.");
    let reply_id = messages[1]["id"].clone();
    let calls = conversation(&app, &token).await["tool_calls"].clone();
    assert_eq!(calls.as_array().map(Vec::len), Some(1), "{calls}");
    assert_eq!(calls[0]["name"], "calculate");
    assert_eq!(calls[0]["status"], "end");
    assert_eq!(calls[0]["result"]["result"], 42);
    assert_eq!(calls[0]["message_id"], reply_id);

    // A client following the conversation sees the call start and end
    // before the spoken reply's final message.
    let events = replayed_events(&app, &token).await;
    let kinds: Vec<(&str, &str)> = events
        .iter()
        .map(|e| {
            let kind = e["type"].as_str().unwrap();
            (kind, e["status"].as_str().unwrap_or(""))
        })
        .collect();
    let tool_start = kinds.iter().position(|k| *k == ("tool", "start")).unwrap();
    let tool_end = kinds.iter().position(|k| *k == ("tool", "end")).unwrap();
    let reply = kinds.iter().rposition(|k| k.0 == "message").unwrap();
    assert!(tool_start < tool_end && tool_end < reply, "{kinds:?}");
    assert_eq!(events[tool_start]["call_id"], "call-live-1");
    assert_eq!(
        events[tool_start]["arguments"],
        json!({"expression": "6 * 7"})
    );
    assert_eq!(events[tool_end]["result"]["result"], 42);
    assert_eq!(events[tool_end]["message_id"], reply_id);
    client.close(None).await.unwrap();
}

#[tokio::test]
async fn a_call_gemini_cancels_ends_as_cancelled_and_is_never_answered() {
    let (app, fake) = gemini_app(vec![Script::new(vec![
        Step::AwaitAudioBytes(6_400),
        Step::Send(msg::input_transcription("Wait for the gate")),
        Step::Send(msg::tool_call(&[("call-gate", "wait_for_gate", json!({}))])),
        // The user speaks over the model: Gemini cancels the call.
        Step::AwaitAudioBytes(12_800),
        Step::Send(msg::interrupted()),
        Step::Send(msg::tool_call_cancellation(&["call-gate"])),
        Step::Send(msg::output_transcription("Never mind.")),
        Step::Send(msg::turn_complete()),
    ])])
    .await;
    // The gate never opens: only the cancellation can end the call.
    let _gate = gate(&app);
    let (token, step) = coached_user(&app).await;
    let mut client = open_voice(&app, &token, &step).await;
    speak(&mut client, 600).await;
    let _ = receive_audio(&mut client, Duration::from_secs(2)).await;

    let conversation = conversation(&app, &token).await;
    let calls = conversation["tool_calls"].clone();
    assert_eq!(
        calls.as_array().map(Vec::len),
        Some(1),
        "{conversation} {:?}",
        fake.connections()[0]
    );
    assert_eq!(calls[0]["name"], "wait_for_gate");
    assert_eq!(calls[0]["status"], "end");
    assert_eq!(calls[0]["error"]["code"], "cancelled", "{calls}");
    let connection = fake.connections()[0].clone();
    assert_eq!(connection.rejected, None);
    assert!(
        connection.tool_responses.is_empty(),
        "a cancelled call is not answered"
    );
    client.close(None).await.unwrap();
}
