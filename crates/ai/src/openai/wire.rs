//! The request body of a streamed chat completion, in OpenAI's own format:
//! tools as `{"type":"function","function":{...}}`, an assistant turn that
//! called tools as `tool_calls` with the arguments as a JSON string, and each
//! result as a `tool` message naming its `tool_call_id`.

use serde_json::{json, Value};

use crate::provider::{ChatMessage, ChatRequest, Role, ToolChoice};

/// The JSON body for `model` and `request`.
pub(super) fn request_body(model: &str, request: &ChatRequest) -> Value {
    let messages: Vec<Value> = request.messages.iter().map(message).collect();
    let mut body = json!({
        "model": model,
        "messages": messages,
        "stream": true,
        "stream_options": { "include_usage": true },
    });
    if let Some(max_tokens) = request.max_tokens {
        body["max_tokens"] = json!(max_tokens);
    }
    if let Some(temperature) = request.temperature {
        body["temperature"] = json!(temperature);
    }
    if !request.tools.is_empty() {
        let tools: Vec<Value> = request
            .tools
            .iter()
            .map(|tool| {
                json!({
                    "type": "function",
                    "function": {
                        "name": tool.name,
                        "description": tool.description,
                        "parameters": tool.parameters,
                    },
                })
            })
            .collect();
        body["tools"] = json!(tools);
        if request.tool_choice == ToolChoice::None {
            body["tool_choice"] = json!("none");
        }
    }
    body
}

fn message(message: &ChatMessage) -> Value {
    let role = match message.role {
        Role::System => "system",
        Role::User => "user",
        Role::Assistant => "assistant",
        Role::Tool => "tool",
    };
    let mut wire = json!({ "role": role, "content": message.content });
    if !message.tool_calls.is_empty() {
        let calls: Vec<Value> = message
            .tool_calls
            .iter()
            .map(|call| {
                json!({
                    "id": call.id,
                    "type": "function",
                    "function": { "name": call.name, "arguments": call.arguments },
                })
            })
            .collect();
        wire["tool_calls"] = json!(calls);
        // OpenAI wants `null`, not "", for a turn that only called tools.
        if message.content.is_empty() {
            wire["content"] = Value::Null;
        }
    }
    if let Some(call_id) = &message.tool_call_id {
        wire["tool_call_id"] = json!(call_id);
    }
    wire
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::{ToolCall, ToolDefinition};

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
        let body = request_body("m", &request);
        assert_eq!(
            body["messages"],
            json!([
                { "role": "system", "content": "Be brief." },
                { "role": "user", "content": "Hi" },
            ])
        );
        assert_eq!(body["max_tokens"], 64);
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
        let body = request_body("m", &request);
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
        assert_eq!(request_body("m", &answer_now)["tool_choice"], "none");
    }
}
