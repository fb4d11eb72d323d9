//! The request body of a streamed chat completion, in OpenAI's own format:
//! tools as `{"type":"function","function":{...}}`, an assistant turn that
//! called tools as `tool_calls` with the arguments as a JSON string, and each
//! result as a `tool` message naming its `tool_call_id`.

use serde::Serialize;
use serde_json::Value;

use crate::provider::{ChatMessage, ChatRequest, Role, ToolChoice, ToolDefinition};

/// The JSON body of one request. It borrows the request's messages and
/// tool schemas and is serialized straight into the request: building a
/// `serde_json::Value` tree first cloned every message and every tool's
/// schema once per turn (~6% of a turn's instructions under callgrind).
#[derive(Serialize)]
pub(super) struct RequestBody<'a> {
    model: &'a str,
    messages: Vec<WireMessage<'a>>,
    stream: bool,
    stream_options: StreamOptions,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f32>,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    tools: Vec<WireTool<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_choice: Option<&'static str>,
}

#[derive(Serialize)]
struct StreamOptions {
    include_usage: bool,
}

#[derive(Serialize)]
struct WireMessage<'a> {
    role: &'static str,
    /// `None` serializes as `null`: OpenAI wants it, not "", for a turn
    /// that only called tools.
    content: Option<&'a str>,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    tool_calls: Vec<WireToolCall<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_call_id: Option<&'a str>,
}

#[derive(Serialize)]
struct WireToolCall<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    function: WireFunctionCall<'a>,
}

#[derive(Serialize)]
struct WireFunctionCall<'a> {
    name: &'a str,
    arguments: &'a str,
}

#[derive(Serialize)]
struct WireTool<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    function: WireFunction<'a>,
}

#[derive(Serialize)]
struct WireFunction<'a> {
    name: &'a str,
    description: &'a str,
    parameters: &'a Value,
}

/// The body for `model` and `request`.
pub(super) fn request_body<'a>(model: &'a str, request: &'a ChatRequest) -> RequestBody<'a> {
    let tools: Vec<WireTool<'a>> = request.tools.iter().map(tool).collect();
    let tool_choice = match request.tool_choice {
        _ if tools.is_empty() => None,
        ToolChoice::Auto => None,
        ToolChoice::None => Some("none"),
        ToolChoice::Required => Some("required"),
    };
    RequestBody {
        model,
        messages: request.messages.iter().map(message).collect(),
        stream: true,
        stream_options: StreamOptions {
            include_usage: true,
        },
        max_tokens: request.max_tokens,
        temperature: request.temperature,
        tools,
        tool_choice,
    }
}

fn tool(tool: &ToolDefinition) -> WireTool<'_> {
    WireTool {
        kind: "function",
        function: WireFunction {
            name: &tool.name,
            description: &tool.description,
            parameters: &tool.parameters,
        },
    }
}

fn message(message: &ChatMessage) -> WireMessage<'_> {
    let role = match message.role {
        Role::System => "system",
        Role::User => "user",
        Role::Assistant => "assistant",
        Role::Tool => "tool",
    };
    let tool_calls: Vec<WireToolCall<'_>> = message
        .tool_calls
        .iter()
        .map(|call| WireToolCall {
            id: &call.id,
            kind: "function",
            function: WireFunctionCall {
                name: &call.name,
                arguments: &call.arguments,
            },
        })
        .collect();
    let only_called_tools = !tool_calls.is_empty() && message.content.is_empty();
    WireMessage {
        role,
        content: (!only_called_tools).then_some(message.content.as_str()),
        tool_calls,
        tool_call_id: message.tool_call_id.as_deref(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::provider::ToolCall;

    fn body_json(model: &str, request: &ChatRequest) -> Value {
        serde_json::to_value(request_body(model, request)).unwrap()
    }

    #[test]
    fn a_plain_request_has_no_tools_and_plain_messages() {
        let request = ChatRequest {
            messages: vec![
                ChatMessage::new(Role::System, "Be brief."),
                ChatMessage::new(Role::User, "Hi"),
            ],
            max_tokens: Some(64),
            ..ChatRequest::default()
        };
        let body = body_json("m", &request);
        assert_eq!(
            body["messages"],
            json!([
                { "role": "system", "content": "Be brief." },
                { "role": "user", "content": "Hi" },
            ])
        );
        assert_eq!(body["max_tokens"], 64);
        assert_eq!(body["stream"], true);
        assert_eq!(body["stream_options"], json!({ "include_usage": true }));
        assert!(body.get("tools").is_none());
        assert!(body.get("temperature").is_none());
    }

    #[test]
    fn tools_and_a_tool_round_go_in_openais_format() {
        let call = ToolCall {
            id: "call_1".into(),
            name: "calculate".into(),
            arguments: r#"{"expression":"6*7"}"#.into(),
        };
        let request = ChatRequest {
            messages: vec![
                ChatMessage::new(Role::User, "What is 6 times 7?"),
                ChatMessage::tool_calls("", vec![call]),
                ChatMessage::tool_result("call_1", "42"),
            ],
            tools: vec![ToolDefinition {
                name: "calculate".into(),
                description: "Evaluate arithmetic.".into(),
                parameters: json!({
                    "type": "object",
                    "properties": { "expression": { "type": "string" } },
                    "required": ["expression"],
                }),
            }],
            ..ChatRequest::default()
        };
        let body = body_json("m", &request);
        assert_eq!(
            body["tools"],
            json!([{
                "type": "function",
                "function": {
                    "name": "calculate",
                    "description": "Evaluate arithmetic.",
                    "parameters": {
                        "type": "object",
                        "properties": { "expression": { "type": "string" } },
                        "required": ["expression"],
                    },
                },
            }])
        );
        assert_eq!(
            body["messages"][1],
            json!({
                "role": "assistant",
                "content": null,
                "tool_calls": [{
                    "id": "call_1",
                    "type": "function",
                    "function": { "name": "calculate", "arguments": "{\"expression\":\"6*7\"}" },
                }],
            })
        );
        assert_eq!(
            body["messages"][2],
            json!({ "role": "tool", "content": "42", "tool_call_id": "call_1" })
        );
        assert!(body.get("tool_choice").is_none(), "auto is the default");
        let answer_now = ChatRequest {
            tool_choice: ToolChoice::None,
            ..request
        };
        assert_eq!(body_json("m", &answer_now)["tool_choice"], "none");
        let must_call = ChatRequest {
            tool_choice: ToolChoice::Required,
            ..answer_now.clone()
        };
        assert_eq!(body_json("m", &must_call)["tool_choice"], "required");
    }
}
