//! Tool calls from the embedded model, on the real SmolLM2 file, with
//! greedy decoding so every run takes the same path. What is tested is the
//! mechanism: a call always parses and its arguments always match the
//! tool's schema, text is never mistaken for a call, and earlier calls in
//! the history render. Whether a 135M-parameter model picks the right tool
//! is not asserted: it often does not.

mod common;

use std::time::Duration;

use colloquy_ai::{
    ChatMessage, ChatRequest, Completion, FinishReason, LocalConfig, LocalProvider, Provider,
    ReplyStream, Role, StreamEvent, ToolCall, ToolChoice, ToolDefinition,
};
use futures::StreamExt;
use serde_json::json;

/// A deadlock guard, not a performance assertion.
const DEADLOCK_GUARD: Duration = Duration::from_secs(120);

fn provider(tools: bool) -> LocalProvider {
    LocalProvider::load(&LocalConfig {
        model_path: common::model_path(),
        workers: 1,
        threads_per_worker: 1,
        context_tokens: 1024,
        max_tokens: 96,
        tools,
        ..LocalConfig::default()
    })
    .expect("the test model loads")
}

fn tools() -> Vec<ToolDefinition> {
    vec![
        ToolDefinition {
            name: "get_weather".into(),
            description: "The current weather in a city.".into(),
            parameters: json!({
                "type": "object",
                "properties": {
                    "city": { "type": "string" },
                    "unit": { "type": "string", "enum": ["celsius", "fahrenheit"] },
                },
                "required": ["city"],
            }),
        },
        ToolDefinition {
            name: "calculate".into(),
            description: "Evaluate an arithmetic expression.".into(),
            parameters: json!({
                "type": "object",
                "properties": { "expression": { "type": "string" } },
                "required": ["expression"],
            }),
        },
    ]
}

fn request(question: &str, choice: ToolChoice) -> ChatRequest {
    ChatRequest {
        messages: vec![
            ChatMessage::new(Role::System, "You are a helpful assistant."),
            ChatMessage::new(Role::User, question),
        ],
        temperature: Some(0.0),
        tools: tools(),
        tool_choice: choice,
        ..ChatRequest::default()
    }
}

/// The reply's text and its completion.
async fn collect(mut stream: ReplyStream) -> (String, Completion) {
    let mut text = String::new();
    loop {
        let item = tokio::time::timeout(DEADLOCK_GUARD, stream.next())
            .await
            .expect("the stream produced nothing for two minutes");
        match item {
            Some(Ok(StreamEvent::Delta(piece))) => text.push_str(&piece),
            Some(Ok(StreamEvent::Finished(done))) => return (text, done),
            Some(Err(error)) => panic!("generation failed: {error}"),
            None => panic!("the stream ended without Finished"),
        }
    }
}

/// Fails unless `call` names an offered tool and its arguments match that
/// tool's schema.
fn assert_valid(call: &ToolCall) {
    let tools = tools();
    let tool = tools
        .iter()
        .find(|tool| tool.name == call.name)
        .unwrap_or_else(|| panic!("an unknown tool: {call:?}"));
    let arguments: serde_json::Value =
        serde_json::from_str(&call.arguments).expect("the arguments are JSON");
    let validator = jsonschema::validator_for(&tool.parameters).unwrap();
    assert!(validator.is_valid(&arguments), "{call:?} breaks its schema");
    assert!(call.id.starts_with("call_"), "{call:?}");
}

#[tokio::test]
async fn a_required_call_is_one_well_formed_call_and_no_text() {
    let provider = provider(true);
    for question in [
        "What is the weather like in Paris?",
        "How much is 17 times 23?",
        "Tell me a joke.",
    ] {
        let stream = provider
            .stream_chat(request(question, ToolChoice::Required))
            .await
            .unwrap();
        let (text, done) = collect(stream).await;
        assert_eq!(text, "", "a call is not streamed as text: {question}");
        assert_eq!(done.finish_reason, FinishReason::ToolCalls, "{question}");
        assert_eq!(done.tool_calls.len(), 1, "{question}");
        assert_valid(&done.tool_calls[0]);
        println!("{question} -> {:?}", done.tool_calls[0]);
    }
}

#[tokio::test]
async fn with_auto_the_reply_is_either_text_or_a_well_formed_call() {
    let provider = provider(true);
    for question in [
        "Hello! How are you today?",
        "What is the weather like in Rome?",
    ] {
        let stream = provider
            .stream_chat(request(question, ToolChoice::Auto))
            .await
            .unwrap();
        let (text, done) = collect(stream).await;
        match done.finish_reason {
            FinishReason::ToolCalls => {
                assert_eq!(text, "", "{question}");
                assert_eq!(done.tool_calls.len(), 1);
                assert_valid(&done.tool_calls[0]);
            }
            _ => {
                assert!(done.tool_calls.is_empty(), "{question}");
                assert!(!text.trim().is_empty(), "{question}");
                assert!(!text.trim_start().starts_with('{'), "{question}: {text}");
            }
        }
        println!("{question} -> {text:?} {:?}", done.tool_calls);
    }
}

#[tokio::test]
async fn tools_are_not_offered_unless_enabled_and_earlier_calls_render() {
    // Off (the default): even a required call is plain text.
    let provider = provider(false);
    let stream = provider
        .stream_chat(request(
            "What is the weather like in Paris?",
            ToolChoice::Required,
        ))
        .await
        .unwrap();
    let (text, done) = collect(stream).await;
    assert!(done.tool_calls.is_empty());
    assert_ne!(done.finish_reason, FinishReason::ToolCalls);
    assert!(!text.is_empty());

    // On, with a call and its result in the history and no new call allowed:
    // the model answers in text.
    let provider = self::provider(true);
    let mut asked = ChatMessage::new(Role::Assistant, "");
    asked.tool_calls = vec![ToolCall {
        id: "call_1".into(),
        name: "get_weather".into(),
        arguments: r#"{"city":"Paris"}"#.into(),
    }];
    let mut result = ChatMessage::new(Role::Tool, r#"{"temperature_c":21,"sky":"sunny"}"#);
    result.tool_call_id = Some("call_1".into());
    let mut answer_now = request("What is the weather like in Paris?", ToolChoice::None);
    answer_now.messages.extend([asked, result]);
    let (text, done) = collect(provider.stream_chat(answer_now).await.unwrap()).await;
    assert!(done.tool_calls.is_empty());
    assert!(!text.trim().is_empty());
    println!("after the result -> {text:?}");
}
