//! One tool of an MCP server, as the model sees it: named
//! `<server>__<tool>`, called with `tools/call` on the server's current
//! connection, its result content turned into JSON the model can read.
//!
//! The server is sent the arguments the model wrote and nothing else: no
//! user id, no conversation id. What a server may do for whom is the
//! deployment's decision when it declares the server.

use std::sync::Arc;

use async_trait::async_trait;
use colloquy_ai::ToolDefinition;
use rmcp::model::{CallToolRequestParams, CallToolResult, ContentBlock};
use serde_json::{json, Value};

use super::server::ServerLink;
use crate::tools::{registry::unavailable, Tool, ToolContext, ToolFailure};

/// Separates the server's name from its tool's in the offered name.
pub(super) const SEPARATOR: &str = "__";

/// A tool that an MCP server listed.
pub(super) struct McpTool {
    pub link: Arc<ServerLink>,
    /// The name the server knows it by.
    pub remote_name: String,
    /// What the model is offered (the prefixed name).
    pub definition: ToolDefinition,
    /// Longest text kept from a result (the registry's result cap): the
    /// rest is dropped before it is copied around.
    pub max_result_bytes: usize,
}

#[async_trait]
impl Tool for McpTool {
    fn definition(&self) -> ToolDefinition {
        self.definition.clone()
    }

    fn available(&self) -> bool {
        self.link.peer().is_some()
    }

    async fn call(&self, _context: &ToolContext, arguments: Value) -> Result<Value, ToolFailure> {
        let peer = self.link.peer().ok_or_else(unavailable)?;
        let Value::Object(arguments) = arguments else {
            return Err(ToolFailure::new(
                "invalid_arguments",
                "The arguments must be a JSON object.",
            ));
        };
        let request =
            CallToolRequestParams::new(self.remote_name.clone()).with_arguments(arguments);
        // Dropping this future (time-out, stop) makes rmcp send
        // `notifications/cancelled` for the request.
        let result = peer.call_tool(request).await.map_err(|error| {
            // Per call, so at debug; the server's own failure is logged
            // at warn by its supervisor.
            tracing::debug!(server = %self.link.name, %error, "an MCP tool call failed");
            unavailable()
        })?;
        result_value(&result, self.max_result_bytes)
    }
}

/// The model's view of a result: its text parts joined, other parts
/// described, the structured content if any; `isError` becomes a failure
/// carrying the server's text.
pub(super) fn result_value(result: &CallToolResult, limit: usize) -> Result<Value, ToolFailure> {
    let text = content_text(&result.content, limit);
    if result.is_error == Some(true) {
        return Err(ToolFailure::new("tool_failed", text));
    }
    let mut value = json!({ "content": text });
    if let Some(structured) = &result.structured_content {
        value["structured_content"] = structured.clone();
    }
    Ok(value)
}

/// The content blocks as one text, cut a little past `limit` bytes (so the
/// registry still sees the result as too large).
fn content_text(content: &[ContentBlock], limit: usize) -> String {
    let mut text = String::new();
    for block in content {
        if text.len() > limit {
            break;
        }
        if !text.is_empty() {
            text.push('\n');
        }
        match block {
            ContentBlock::Text(part) => {
                let room = (limit + 1).saturating_sub(text.len());
                let mut end = part.text.len().min(room);
                while !part.text.is_char_boundary(end) {
                    end -= 1;
                }
                text.push_str(&part.text[..end]);
            }
            ContentBlock::Image(image) => {
                text.push_str(&format!("[image: {}]", image.mime_type));
            }
            ContentBlock::Audio(audio) => {
                text.push_str(&format!("[audio: {}]", audio.mime_type));
            }
            ContentBlock::Resource(_) => text.push_str("[embedded resource]"),
            ContentBlock::ResourceLink(link) => {
                text.push_str(&format!("[resource link: {}]", link.uri));
            }
            _ => text.push_str("[content of an unknown kind]"),
        }
    }
    text
}

/// The name the model is offered for `server`'s tool `tool`: characters a
/// function name cannot have become `_`; `None` if it is too long.
pub(super) fn offered_name(server: &str, tool: &str) -> Option<String> {
    let tool: String = tool
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let name = format!("{server}{SEPARATOR}{tool}");
    crate::tools::is_valid_tool_name(&name).then_some(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_prefixed_and_made_valid() {
        assert_eq!(offered_name("calc", "add").as_deref(), Some("calc__add"));
        assert_eq!(
            offered_name("fs", "read.file v2").as_deref(),
            Some("fs__read_file_v2")
        );
        assert_eq!(offered_name("fs", &"x".repeat(70)), None);
    }

    #[test]
    fn text_parts_are_joined_other_parts_described_and_errors_fail() {
        let result = CallToolResult::success(vec![
            ContentBlock::text("5"),
            ContentBlock::image("aGk=", "image/png"),
        ]);
        assert_eq!(
            result_value(&result, 1024).unwrap(),
            json!({ "content": "5\n[image: image/png]" })
        );
        let failed = CallToolResult::error(vec![ContentBlock::text("division by zero")]);
        let failure = result_value(&failed, 1024).unwrap_err();
        assert_eq!(failure.code, "tool_failed");
        assert_eq!(failure.message, "division by zero");
        let long = CallToolResult::success(vec![ContentBlock::text("é".repeat(100))]);
        let cut = result_value(&long, 10).unwrap();
        assert!(cut["content"].as_str().unwrap().len() <= 11);
    }
}
