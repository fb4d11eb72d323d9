//! Tools in a spoken turn (real Whisper and Piper, feature `voice-local`,
//! as the other voice tests): the user asks aloud, the fake upstream calls
//! `calculate`, the socket gets the call's `tool` start and end events,
//! then the answer, streamed and spoken.

use std::time::Duration;

use colloquy_voice::{pcm::rms, wer::word_error_rate};
use serde_json::{json, Value};
use tokio::time::Instant;

use crate::{
    fake_openai::Script,
    voice::{audio_of, silence, speaking_chat, speech, stream_json, transcribe_reply, voice_app},
};

// Words, not numbers: Whisper writes numbers as digits.
const QUESTION: &str = "Can you check my math for me please?";
const ANSWER: &str = "I checked it with the calculator and you are right.";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spoken_question_runs_a_tool_then_the_answer_is_spoken() {
    let (_turn, app) = voice_app().await;
    app.upstream.push(Script::tool_calls(&[(
        "call_calc",
        "calculate",
        r#"{"expression": "6 * 7"}"#,
    )]));
    app.upstream.push(Script::tokens(&[
        "I checked it with the calculator",
        " and you are right.",
    ]));
    let token = app.register("spoken-tools@example.com").await;
    let (mut sink, mut received) = speaking_chat(&app, &token).await;
    let mut input = silence(200);
    input.extend(speech(&app, QUESTION));
    input.extend(silence(1000));
    stream_json(&mut sink, &input, 16_000).await;

    let transcript = received.events_until("transcript").await.pop().unwrap();
    let said = transcript["text"].as_str().unwrap();
    assert!(
        word_error_rate(QUESTION, said) <= 0.25,
        "transcript {said:?}"
    );
    let ack = received.events_until("ack").await.pop().unwrap();
    let reply_id = ack["reply_id"].as_str().unwrap().to_owned();
    // Everything of the reply: its events, then its audio.
    let mut events: Vec<Value> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        let Ok(event) = tokio::time::timeout(Duration::from_secs(3), received.event()).await else {
            break;
        };
        events.push(event);
    }
    let kinds: Vec<String> = events
        .iter()
        .filter(|e| e["type"] != "audio")
        .map(|e| match e["type"].as_str().unwrap_or_default() {
            "tool" => format!("tool:{}", e["status"].as_str().unwrap_or_default()),
            kind => kind.to_owned(),
        })
        .collect();
    let position = |kind: &str| {
        kinds
            .iter()
            .position(|k| k == kind)
            .unwrap_or_else(|| panic!("no {kind} in {kinds:?}"))
    };
    assert!(
        position("tool:start") < position("tool:end")
            && position("tool:end") < position("delta")
            && position("delta") < position("message"),
        "the call runs before the answer streams: {kinds:?}"
    );
    let tool = |status: &str| {
        events
            .iter()
            .find(|e| e["type"] == "tool" && e["status"] == status)
            .unwrap()
    };
    assert_eq!(tool("start")["name"], "calculate");
    assert_eq!(tool("start")["message_id"], reply_id.as_str());
    assert_eq!(tool("start")["arguments"], json!({ "expression": "6 * 7" }));
    assert_eq!(tool("end")["result"]["result"], 42);
    let last_message = events
        .iter()
        .rev()
        .find(|e| e["type"] == "message")
        .unwrap();
    assert_eq!(last_message["content"], ANSWER);

    // The answer is spoken after the tool's events, and says the answer.
    let first_audio = events.iter().position(|e| e["type"] == "audio");
    let tool_end = events
        .iter()
        .position(|e| e["type"] == "tool" && e["status"] == "end");
    assert!(first_audio > tool_end, "audio after the tool ended");
    let audio = audio_of(&events);
    assert!(rms(&audio) > 0.01, "the answer is spoken");
    let heard = transcribe_reply(&app, &audio);
    assert!(
        word_error_rate(ANSWER, &heard) <= 0.25,
        "reply audio says {heard:?}"
    );

    // The model got the result back in OpenAI's format before answering.
    let requests = app.upstream.requests();
    let messages = requests[1]["messages"].as_array().unwrap();
    let result = messages.last().unwrap();
    assert_eq!(result["role"], "tool");
    assert_eq!(result["tool_call_id"], "call_calc");
}
