//! Tool calls from the local model. SmolLM2 has no tool-calling format of
//! its own, so Colloquy gives it one: the system instruction lists the
//! tools and asks for a call as one JSON object `{"tool": name,
//! "arguments": {...}}`, and a llama.cpp grammar, made from the tools'
//! JSON Schemas by llama.cpp's own converter, holds the model to it.
//!
//! With [`ToolChoice::Auto`] the grammar is "a call, or text that does not
//! start with `{`", and it only binds until the first visible character:
//! a reply that starts as text is sampled without it from there on (a
//! grammar check of every candidate token costs time and text needs none).
//! With [`ToolChoice::Required`] the reply must be a call. A call always
//! parses and its arguments always match the tool's schema; whether a
//! 135M-parameter model picks the right tool, or calls one when it should,
//! is another matter: it often does not (see the README).

use llama_cpp_2::json_schema_to_grammar;
use serde_json::{json, Value};

use crate::provider::{ChatMessage, ProviderError, Role, ToolCall, ToolChoice, ToolDefinition};

/// The rule the grammar starts from.
pub(crate) const GRAMMAR_ROOT: &str = "colloquy-reply";

/// How the model is told about its tools (the list follows).
const INSTRUCTION: &str = "You can call tools. To call one, reply with only a JSON object \
     {\"tool\": \"<name>\", \"arguments\": {...}} and nothing else; its result comes back \
     as a message from the tool. Otherwise answer in plain text. The tools:";

/// Whether a reply to `tools` with `choice` is held to a grammar, and how.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CallRule {
    /// A call or text: the grammar binds until the reply shows which.
    CallOrText,
    /// Only a call.
    CallOnly,
}

impl CallRule {
    /// The rule for a request, if it offers tools the model may call.
    pub(crate) fn for_request(tools: &[ToolDefinition], choice: ToolChoice) -> Option<Self> {
        if tools.is_empty() {
            return None;
        }
        match choice {
            ToolChoice::Auto => Some(Self::CallOrText),
            ToolChoice::Required => Some(Self::CallOnly),
            ToolChoice::None => None,
        }
    }
}

/// The grammar (GBNF, root [`GRAMMAR_ROOT`]) of a reply under `rule`.
pub(crate) fn grammar(tools: &[ToolDefinition], rule: CallRule) -> Result<String, ProviderError> {
    let calls: Vec<Value> = tools
        .iter()
        .map(|tool| {
            json!({
                "type": "object",
                "properties": { "tool": { "const": tool.name }, "arguments": tool.parameters },
                "required": ["tool", "arguments"],
                "additionalProperties": false,
            })
        })
        .collect();
    let schema = json!({ "oneOf": calls }).to_string();
    // The converter's rules start from `root`; ours wrap it.
    let call = json_schema_to_grammar(&schema)
        .map_err(|error| ProviderError::Model(format!("a tool's schema: {error}")))?;
    let reply = match rule {
        CallRule::CallOnly => format!("{GRAMMAR_ROOT} ::= colloquy-ws root"),
        CallRule::CallOrText => {
            format!("{GRAMMAR_ROOT} ::= colloquy-ws (root | colloquy-text)\ncolloquy-text ::= [^{{ \\t\\r\\n] .*")
        }
    };
    Ok(format!("{reply}\ncolloquy-ws ::= [ \\t\\r\\n]*\n{call}"))
}

/// `messages` as the local model reads them with tools: the tool list
/// after the system instruction, and each earlier call written out in the
/// call format (SmolLM2's template has no place for structured calls).
pub(crate) fn prompt_messages(
    messages: &[ChatMessage],
    tools: &[ToolDefinition],
) -> Vec<ChatMessage> {
    let mut prompt: Vec<ChatMessage> = messages
        .iter()
        .map(|message| {
            if message.tool_calls.is_empty() {
                return message.clone();
            }
            let calls: Vec<String> = message.tool_calls.iter().map(call_text).collect();
            ChatMessage::new(Role::Assistant, calls.join("\n"))
        })
        .collect();
    if tools.is_empty() {
        return prompt;
    }
    let mut listed = String::from(INSTRUCTION);
    for tool in tools {
        listed.push_str(&format!(
            "\n- {}: {} Arguments (JSON Schema): {}",
            tool.name, tool.description, tool.parameters
        ));
    }
    match prompt.first_mut() {
        Some(system) if system.role == Role::System => {
            system.content = format!("{}\n\n{listed}", system.content);
        }
        _ => prompt.insert(0, ChatMessage::new(Role::System, listed)),
    }
    prompt
}

/// A call as the model writes it (`tool` first, as the grammar has it).
fn call_text(call: &ToolCall) -> String {
    let arguments: Value = serde_json::from_str(&call.arguments).unwrap_or(Value::Null);
    format!(
        r#"{{"tool": {}, "arguments": {arguments}}}"#,
        Value::from(call.name.as_str())
    )
}

/// The call in a reply held to the grammar; `None` when the text is no
/// whole call of an offered tool (the reply was cut off by its token limit).
pub(crate) fn parse_call(text: &str, tools: &[ToolDefinition]) -> Option<ToolCall> {
    let value: Value = serde_json::from_str(text.trim()).ok()?;
    let name = value.get("tool")?.as_str()?;
    let arguments = value.get("arguments")?;
    tools.iter().find(|tool| tool.name == name)?;
    Some(ToolCall {
        id: format!("call_{}", uuid::Uuid::now_v7().simple()),
        name: name.to_owned(),
        arguments: arguments.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn weather() -> ToolDefinition {
        ToolDefinition {
            name: "get_weather".into(),
            description: "The weather in a city.".into(),
            parameters: json!({
                "type": "object",
                "properties": { "city": { "type": "string" } },
                "required": ["city"],
            }),
        }
    }

    #[test]
    fn the_grammar_wraps_the_converted_schema_in_a_call_or_text_rule() {
        let grammar = grammar(&[weather()], CallRule::CallOrText).unwrap();
        assert!(grammar.starts_with("colloquy-reply ::= colloquy-ws (root | colloquy-text)"));
        assert!(grammar.contains("root ::="), "{grammar}");
        assert!(grammar.contains("get_weather"), "{grammar}");
        let only = super::grammar(&[weather()], CallRule::CallOnly).unwrap();
        assert!(!only.contains("colloquy-text"), "{only}");
    }

    #[test]
    fn a_call_parses_only_when_whole_and_of_an_offered_tool() {
        let tools = [weather()];
        let call = parse_call(
            r#" {"tool":"get_weather","arguments":{"city":"Paris"}}"#,
            &tools,
        )
        .unwrap();
        assert_eq!(call.name, "get_weather");
        assert_eq!(call.arguments, r#"{"city":"Paris"}"#);
        assert!(call.id.starts_with("call_"));
        assert!(parse_call(r#"{"tool":"get_weather","arguments":{"ci"#, &tools).is_none());
        assert!(parse_call(r#"{"tool":"launch","arguments":{}}"#, &tools).is_none());
    }

    #[test]
    fn the_prompt_lists_the_tools_and_writes_earlier_calls_in_the_call_format() {
        let mut asked = ChatMessage::new(Role::Assistant, "");
        asked.tool_calls = vec![ToolCall {
            id: "c1".into(),
            name: "get_weather".into(),
            arguments: r#"{"city":"Oslo"}"#.into(),
        }];
        let messages = [
            ChatMessage::new(Role::System, "Be brief."),
            ChatMessage::new(Role::User, "Weather in Oslo?"),
            asked,
        ];
        let prompt = prompt_messages(&messages, &[weather()]);
        assert!(prompt[0]
            .content
            .starts_with("Be brief.\n\nYou can call tools."));
        assert!(prompt[0]
            .content
            .contains("- get_weather: The weather in a city."));
        assert_eq!(
            prompt[2].content,
            r#"{"tool": "get_weather", "arguments": {"city":"Oslo"}}"#
        );
        assert!(prompt[2].tool_calls.is_empty());
    }
}
