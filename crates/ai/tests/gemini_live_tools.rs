//! Function calling over Gemini Live against the strict fake, on real
//! sockets: tools declared in `setup`, a `toolCall` surfaced to the caller
//! and answered with a `toolResponse`, a `toolCallCancellation` honoured
//! (a late result is never sent), and the fake refusing malformed tool
//! traffic as the service does.

mod support;

use std::time::Duration;

use colloquy_ai::{
    gemini_live::{run_session, LiveChannels, LiveConfig, LiveError, LiveEvent, LiveSetup},
    LiveToolResult, ToolCall, ToolDefinition,
};
use serde_json::{json, Value};
use support::fake_gemini_live::{msg, rejection, FakeConfig, FakeLive, Script, Step, PATIENCE};
use tokio::{sync::mpsc, task::JoinHandle};

const KEY: &str = "test-key-tools";
const MODEL: &str = "gemini-live-test";

fn calculate() -> ToolDefinition {
    ToolDefinition {
        name: "calculate".into(),
        description: "Evaluate an arithmetic expression.".into(),
        parameters: json!({
            "type": "object",
            "properties": {"expression": {"type": "string"}},
            "required": ["expression"],
            "additionalProperties": false,
        }),
    }
}

async fn spawn_fake(script: Script) -> FakeLive {
    FakeLive::start(FakeConfig {
        api_key: KEY.into(),
        model: format!("models/{MODEL}"),
        scripts: vec![script],
    })
    .await
}

/// A session with the `calculate` tool and the caller's ends of it.
struct Caller {
    audio: Option<mpsc::Sender<Vec<u8>>>,
    results: mpsc::Sender<LiveToolResult>,
    events: mpsc::Receiver<LiveEvent>,
    task: JoinHandle<Result<(), LiveError>>,
}

impl Caller {
    fn start(fake: &FakeLive) -> Caller {
        let mut config = LiveConfig::new(KEY, MODEL);
        config.endpoint = fake.endpoint();
        config.connect_timeout = Duration::from_secs(5);
        let (audio_tx, audio_in) = mpsc::channel(8);
        let (results, tool_results_in) = mpsc::channel(8);
        let (events_out, events) = mpsc::channel(64);
        let setup = LiveSetup {
            system_instruction: "You can calculate.".into(),
            tools: vec![calculate()],
        };
        let channels = LiveChannels {
            audio_in,
            tool_results_in,
            events_out,
        };
        let task = tokio::spawn(async move { run_session(&config, setup, channels).await });
        Caller {
            audio: Some(audio_tx),
            results,
            events,
            task,
        }
    }

    async fn say(&self, bytes: usize) {
        let audio = self.audio.as_ref().expect("input open");
        audio.send(vec![1; bytes]).await.expect("session running");
    }

    async fn answer(&self, result: LiveToolResult) {
        self.results.send(result).await.expect("session running");
    }

    /// The next event that is not usage.
    async fn next_event(&mut self) -> LiveEvent {
        loop {
            let event = tokio::time::timeout(PATIENCE, self.events.recv())
                .await
                .expect("timed out waiting for an event")
                .expect("the session ended early");
            if !matches!(event, LiveEvent::Usage(_)) {
                return event;
            }
        }
    }

    async fn finish(mut self) -> Result<(), LiveError> {
        self.audio = None;
        while tokio::time::timeout(PATIENCE, self.events.recv())
            .await
            .expect("the session did not end")
            .is_some()
        {}
        tokio::time::timeout(PATIENCE, self.task)
            .await
            .expect("the session did not end")
            .expect("the session panicked")
    }
}

fn expect_calls(event: LiveEvent) -> Vec<ToolCall> {
    match event {
        LiveEvent::ToolCalls(calls) => calls,
        other => panic!("expected tool calls, got {other:?}"),
    }
}

#[tokio::test]
async fn a_tool_call_is_surfaced_and_its_result_goes_back_as_a_tool_response() {
    let fake = spawn_fake(Script::new(vec![
        Step::AwaitAudioBytes(3200),
        Step::Send(msg::tool_call(&[(
            "call-1",
            "calculate",
            json!({"expression": "6*7"}),
        )])),
        Step::AwaitToolResponses(1),
        Step::Send(msg::output_transcription("It is 42.")),
        Step::Send(msg::turn_complete()),
    ]))
    .await;
    let mut caller = Caller::start(&fake);
    caller.say(3200).await;

    let calls = expect_calls(caller.next_event().await);
    assert_eq!(
        calls,
        vec![ToolCall {
            id: "call-1".into(),
            name: "calculate".into(),
            arguments: r#"{"expression":"6*7"}"#.into(),
        }]
    );
    caller
        .answer(LiveToolResult::from_json_text(
            &calls[0],
            r#"{"value": 42}"#,
        ))
        .await;
    assert_eq!(
        caller.next_event().await,
        LiveEvent::OutputTranscript("It is 42.".into())
    );
    assert_eq!(caller.next_event().await, LiveEvent::TurnComplete);
    assert_eq!(caller.finish().await, Ok(()));

    let connection = &fake.connections()[0];
    assert_eq!(connection.rejected, None);
    let setup = connection.setup.as_ref().expect("setup received");
    assert_eq!(
        setup["tools"],
        json!([{"functionDeclarations": [{
            "name": "calculate",
            "description": "Evaluate an arithmetic expression.",
            "parametersJsonSchema": calculate().parameters,
        }]}])
    );
    assert_eq!(
        connection.tool_responses,
        vec![json!({"id": "call-1", "name": "calculate", "response": {"value": 42}})]
    );
}

#[tokio::test]
async fn a_cancelled_call_is_reported_and_its_late_result_is_never_sent() {
    let fake = spawn_fake(Script::new(vec![
        Step::AwaitAudioBytes(1600),
        Step::Send(msg::tool_call(&[
            ("slow", "calculate", json!({"expression": "1+1"})),
            ("fast", "calculate", json!({"expression": "2+2"})),
        ])),
        Step::Send(msg::interrupted()),
        Step::Send(msg::tool_call_cancellation(&["slow", "never-made"])),
        Step::AwaitToolResponses(1),
        Step::Send(msg::turn_complete()),
    ]))
    .await;
    let mut caller = Caller::start(&fake);
    caller.say(1600).await;

    let calls = expect_calls(caller.next_event().await);
    assert_eq!(calls.len(), 2);
    assert_eq!(caller.next_event().await, LiveEvent::Interrupted);
    assert_eq!(
        caller.next_event().await,
        LiveEvent::ToolCallsCancelled(vec!["slow".into()]),
        "only calls that were open are reported"
    );
    // The cancelled call's result arrives late: it must not reach the
    // service (the fake would refuse it and end the session).
    caller
        .answer(LiveToolResult::from_json_text(&calls[0], "2"))
        .await;
    caller
        .answer(LiveToolResult::from_json_text(&calls[1], "4"))
        .await;
    assert_eq!(caller.next_event().await, LiveEvent::TurnComplete);
    assert_eq!(caller.finish().await, Ok(()));

    let connection = &fake.connections()[0];
    assert_eq!(connection.rejected, None);
    assert_eq!(
        connection.tool_responses,
        vec![json!({"id": "fast", "name": "calculate", "response": {"output": 4}})]
    );
}

fn setup_with_tools(tools: Value) -> Value {
    json!({"setup": {
        "model": format!("models/{MODEL}"),
        "generationConfig": {"responseModalities": ["AUDIO"]},
        "tools": tools,
    }})
}

fn plain_setup() -> Value {
    setup_with_tools(json!([]))
}

fn tool_response(responses: Value) -> Value {
    json!({"toolResponse": {"functionResponses": responses}})
}

#[tokio::test]
async fn the_fake_refuses_malformed_tool_traffic_like_the_service() {
    let schema = json!({"type": "object", "properties": {}});
    let cases: Vec<(Vec<Value>, &str)> = vec![
        (
            vec![setup_with_tools(
                json!([{"functionDeclarations": [{"name": "1bad name", "description": "x"}]}]),
            )],
            "invalid function name",
        ),
        (
            vec![setup_with_tools(json!([{"functionDeclarations": [{
                "name": "calculate", "parameters": schema, "parametersJsonSchema": schema,
            }]}]))],
            "mutually exclusive",
        ),
        (
            vec![setup_with_tools(
                json!([{"functionDeclarations": [{"name": "calculate", "args": {}}]}]),
            )],
            "unknown field",
        ),
        (
            vec![
                plain_setup(),
                tool_response(json!([{"id": "c1", "name": "calculate", "response": {}}])),
            ],
            "answers no pending function call",
        ),
        (
            vec![
                plain_setup(),
                tool_response(json!([{"id": "c1", "name": "calculate", "response": 42}])),
            ],
            "Invalid JSON payload",
        ),
        (
            vec![plain_setup(), tool_response(json!([]))],
            "functionResponses is empty",
        ),
        (
            vec![
                plain_setup(),
                json!({"toolResponse": {"functionResponse": []}}),
            ],
            "unknown field",
        ),
    ];
    for (messages, expected) in cases {
        let fake = spawn_fake(Script::default()).await;
        let url = format!("{}?key={KEY}", fake.endpoint());
        let (code, reason) = rejection(url, messages.clone()).await;
        assert_eq!(code, 1007, "{messages:?}: {reason}");
        assert!(reason.contains(expected), "{messages:?}: {reason}");
    }
}

#[tokio::test]
async fn the_fake_refuses_answers_to_cancelled_or_renamed_calls() {
    for answer in [
        json!({"id": "c1", "name": "calculate", "response": {}}),
        json!({"id": "c2", "name": "other", "response": {}}),
    ] {
        let release = std::sync::Arc::new(tokio::sync::Notify::new());
        let fake = spawn_fake(Script::new(vec![
            Step::Send(msg::tool_call(&[
                ("c1", "calculate", json!({})),
                ("c2", "calculate", json!({})),
            ])),
            Step::Send(msg::tool_call_cancellation(&["c1"])),
            Step::AwaitRelease(release),
        ]))
        .await;
        // The fake sends its scripted messages before it reads the answer.
        let url = format!("{}?key={KEY}", fake.endpoint());
        let (code, reason) =
            rejection(url, vec![plain_setup(), tool_response(json!([answer]))]).await;
        assert_eq!(code, 1007, "{answer}: {reason}");
        assert!(
            reason.contains("answers no pending function call"),
            "{reason}"
        );
    }
}
