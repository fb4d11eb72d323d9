//! Function calling over the Live API: the tools declared in `setup`
//! (`tools: [{functionDeclarations: [...]}]`), the service's `toolCall`
//! and `toolCallCancellation`, and our `toolResponse`.
//!
//! Declarations carry the tool's JSON Schema as `parametersJsonSchema`
//! rather than `parameters`, which takes only the OpenAPI subset: the same
//! schema the OpenAI-compatible provider sends works unchanged.
//!
//! [`OpenCalls`] remembers which calls the service is still waiting for, so
//! a result that comes back after the call was cancelled (or twice) is
//! dropped here instead of being sent: the service refuses a response to a
//! call it no longer has.

use std::{collections::HashMap, sync::Mutex};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::{ToolCall, ToolDefinition};

/// Most calls remembered as open at once; the service makes a handful per
/// turn, so reaching this means results are not coming back. The oldest is
/// forgotten first.
pub(crate) const MAX_OPEN_CALLS: usize = 256;

/// The result of a call the service asked for (`toolCall`), to send back
/// as a `toolResponse`.
#[derive(Debug, Clone, PartialEq)]
pub struct LiveToolResult {
    /// The call's `id`, as the service gave it.
    pub id: String,
    /// The function's name, as the service gave it.
    pub name: String,
    /// What the function returned: a JSON object (the proto's `Struct`).
    pub response: Map<String, Value>,
}

impl LiveToolResult {
    /// The result of `call` from the JSON text a tool produced. The Live
    /// API wants an object: an object is sent as it is, any other value
    /// (or text that is not JSON) as `{"output": value}`.
    pub fn from_json_text(call: &ToolCall, text: &str) -> Self {
        let response = match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(object)) => object,
            Ok(other) => Map::from_iter([("output".to_owned(), other)]),
            Err(_) => Map::from_iter([("output".to_owned(), Value::String(text.to_owned()))]),
        };
        Self {
            id: call.id.clone(),
            name: call.name.clone(),
            response,
        }
    }
}

/// `Tool` with function declarations only.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ToolDeclarations<'a> {
    pub function_declarations: Vec<FunctionDeclaration<'a>>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct FunctionDeclaration<'a> {
    pub name: &'a str,
    pub description: &'a str,
    pub parameters_json_schema: &'a Value,
}

/// The `tools` of a setup message: none when no tool is offered, so a
/// session without tools sends exactly what it did before.
pub(crate) fn declarations(tools: &[ToolDefinition]) -> Vec<ToolDeclarations<'_>> {
    if tools.is_empty() {
        return Vec::new();
    }
    vec![ToolDeclarations {
        function_declarations: tools
            .iter()
            .map(|tool| FunctionDeclaration {
                name: &tool.name,
                description: &tool.description,
                parameters_json_schema: &tool.parameters,
            })
            .collect(),
    }]
}

/// `BidiGenerateContentToolResponse`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ToolResponse<'a> {
    pub function_responses: [FunctionResponse<'a>; 1],
}

#[derive(Debug, Serialize)]
pub(crate) struct FunctionResponse<'a> {
    pub id: &'a str,
    pub name: &'a str,
    pub response: &'a Map<String, Value>,
}

/// `BidiGenerateContentToolCall`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub(crate) struct ToolCallMessage {
    pub function_calls: Vec<FunctionCall>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct FunctionCall {
    pub id: Option<String>,
    pub name: Option<String>,
    pub args: Option<Value>,
}

impl ToolCallMessage {
    /// The calls as the agent loop knows them. A call without an id or a
    /// name could never be answered: it is skipped with a warning.
    pub(crate) fn into_calls(self) -> Vec<ToolCall> {
        self.function_calls
            .into_iter()
            .filter_map(|call| {
                let (Some(id), Some(name)) = (call.id, call.name) else {
                    tracing::warn!("skipping a Gemini Live function call without id or name");
                    return None;
                };
                let arguments = call.args.unwrap_or_else(|| Value::Object(Map::new()));
                Some(ToolCall {
                    id,
                    name,
                    arguments: arguments.to_string(),
                })
            })
            .collect()
    }
}

/// `BidiGenerateContentToolCallCancellation`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct ToolCallCancellation {
    pub ids: Vec<String>,
}

/// The calls the service waits for, by id (with their names), shared by
/// the two halves of a connection and kept across resumptions.
#[derive(Debug, Default)]
pub(crate) struct OpenCalls {
    /// Name and arrival order of each open call, by id.
    calls: Mutex<HashMap<String, (u64, String)>>,
}

impl OpenCalls {
    /// The service asked for these calls.
    pub(crate) fn opened(&self, calls: &[ToolCall]) {
        let mut open = self.calls.lock().unwrap_or_else(|e| e.into_inner());
        let mut order = open.values().map(|(order, _)| *order).max().unwrap_or(0);
        for call in calls {
            order += 1;
            open.insert(call.id.clone(), (order, call.name.clone()));
        }
        while open.len() > MAX_OPEN_CALLS {
            let oldest = open
                .iter()
                .min_by_key(|(_, (order, _))| *order)
                .map(|(id, _)| id.clone());
            match oldest {
                Some(id) => open.remove(&id),
                None => break,
            };
        }
    }

    /// The service cancelled these calls; the ids it still had open.
    pub(crate) fn cancelled(&self, ids: &[String]) -> Vec<String> {
        let mut open = self.calls.lock().unwrap_or_else(|e| e.into_inner());
        ids.iter()
            .filter(|id| open.remove(id.as_str()).is_some())
            .cloned()
            .collect()
    }

    /// Take `result`'s call out of the open ones: true when the service
    /// still waits for it under that name (then the result may be sent).
    pub(crate) fn answer(&self, result: &LiveToolResult) -> bool {
        let mut open = self.calls.lock().unwrap_or_else(|e| e.into_inner());
        match open.get(&result.id) {
            Some((_, name)) if *name == result.name => {
                open.remove(&result.id);
                true
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn call(id: &str, name: &str) -> ToolCall {
        ToolCall {
            id: id.into(),
            name: name.into(),
            arguments: "{}".into(),
        }
    }

    #[test]
    fn gemini_tool_results_are_always_json_objects() {
        let calc = call("c1", "calculate");
        let object = LiveToolResult::from_json_text(&calc, r#"{"value": 42}"#);
        assert_eq!(Value::Object(object.response), json!({"value": 42}));
        let number = LiveToolResult::from_json_text(&calc, "42");
        assert_eq!(Value::Object(number.response), json!({"output": 42}));
        let text = LiveToolResult::from_json_text(&calc, "not json");
        assert_eq!(Value::Object(text.response), json!({"output": "not json"}));
        assert_eq!((text.id.as_str(), text.name.as_str()), ("c1", "calculate"));
    }

    #[test]
    fn gemini_function_calls_without_id_or_name_are_skipped() {
        let message: ToolCallMessage = serde_json::from_value(json!({"functionCalls": [
            {"id": "a", "name": "calculate", "args": {"expression": "6*7"}},
            {"name": "no_id"},
            {"id": "b", "name": "get_current_time"},
        ]}))
        .unwrap();
        let calls = message.into_calls();
        assert_eq!(calls.len(), 2);
        assert_eq!(calls[0].arguments, r#"{"expression":"6*7"}"#);
        assert_eq!(calls[1].arguments, "{}");
    }

    #[test]
    fn gemini_open_calls_answer_each_call_once_and_never_after_cancellation() {
        let open = OpenCalls::default();
        open.opened(&[call("a", "calculate"), call("b", "calculate")]);
        assert_eq!(
            open.cancelled(&["b".into(), "unknown".into()]),
            vec!["b".to_owned()]
        );
        let result = |id: &str, name: &str| LiveToolResult {
            id: id.into(),
            name: name.into(),
            response: Map::new(),
        };
        assert!(!open.answer(&result("a", "other_name")));
        assert!(open.answer(&result("a", "calculate")));
        assert!(!open.answer(&result("a", "calculate")), "answered twice");
        assert!(!open.answer(&result("b", "calculate")), "cancelled");
    }

    #[test]
    fn gemini_open_calls_are_bounded() {
        let open = OpenCalls::default();
        let calls: Vec<ToolCall> = (0..MAX_OPEN_CALLS + 3)
            .map(|i| call(&format!("c{i}"), "calculate"))
            .collect();
        open.opened(&calls);
        assert_eq!(open.calls.lock().unwrap().len(), MAX_OPEN_CALLS);
        assert!(!open.answer(&LiveToolResult::from_json_text(&calls[0], "{}")));
        let newest = calls.last().unwrap();
        assert!(open.answer(&LiveToolResult::from_json_text(newest, "{}")));
    }
}
