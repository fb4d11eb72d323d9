//! A small MCP server over stdio, built with rmcp's server side: the test
//! double behind the API tests of `[[tools.mcp]]`. Its tools: `add(a, b)`,
//! `fail` (always answers with an error result), `crash` (the process
//! exits mid-call, as a crashing server would), `grow` (adds a tool,
//! `sub(a, b)`, and sends `notifications/tools/list_changed`) and
//! `huge(bytes)` (answers with one message, one line, of about that many
//! bytes: what a misbehaving server's oversized output looks like).

use std::sync::{
    atomic::{AtomicBool, Ordering},
    Arc,
};

use rmcp::{
    model::{
        CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, ListToolsResult,
        PaginatedRequestParams, ServerCapabilities, ServerConfig, Tool,
    },
    service::RequestContext,
    transport::stdio,
    ErrorData, RoleServer, ServerHandler, ServiceExt,
};
use serde_json::{json, Map, Value};

#[derive(Default)]
struct TestServer {
    /// Whether `grow` was called (and `sub` is listed).
    grown: AtomicBool,
}

fn schema(value: Value) -> Arc<Map<String, Value>> {
    match value {
        Value::Object(map) => Arc::new(map),
        _ => Arc::default(),
    }
}

impl ServerHandler for TestServer {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(
            ServerCapabilities::builder()
                .enable_tools()
                .enable_tool_list_changed()
                .build(),
        )
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let numbers = json!({
            "type": "object",
            "properties": { "a": { "type": "number" }, "b": { "type": "number" } },
            "required": ["a", "b"],
        });
        let nothing = json!({ "type": "object" });
        let mut tools = vec![
            Tool::new("add", "Add two numbers.", schema(numbers.clone())),
            Tool::new("fail", "Always fails.", schema(nothing.clone())),
            Tool::new("crash", "Makes the server exit.", schema(nothing.clone())),
            Tool::new("grow", "Adds the tool `sub`.", schema(nothing)),
            Tool::new(
                "huge",
                "Answers with a message of about `bytes` bytes.",
                schema(json!({
                    "type": "object",
                    "properties": { "bytes": { "type": "integer", "minimum": 0 } },
                    "required": ["bytes"],
                })),
            ),
        ];
        if self.grown.load(Ordering::SeqCst) {
            tools.push(Tool::new("sub", "Subtract b from a.", schema(numbers)));
        }
        Ok(ListToolsResult::with_all_items(tools))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let arguments = request.arguments.unwrap_or_default();
        let number = |key: &str| arguments.get(key).and_then(Value::as_f64).unwrap_or(0.0);
        let result = match request.name.as_ref() {
            "add" => CallToolResult::success(vec![ContentBlock::text(
                (number("a") + number("b")).to_string(),
            )]),
            "fail" => CallToolResult::error(vec![ContentBlock::text("the tool failed on purpose")]),
            "sub" => CallToolResult::success(vec![ContentBlock::text(
                (number("a") - number("b")).to_string(),
            )]),
            "crash" => std::process::exit(3),
            "huge" => {
                let bytes = arguments.get("bytes").and_then(Value::as_u64).unwrap_or(0);
                let text = "x".repeat(usize::try_from(bytes).unwrap_or(0));
                CallToolResult::success(vec![ContentBlock::text(text)])
            }
            "grow" => {
                self.grown.store(true, Ordering::SeqCst);
                if context.peer.notify_tool_list_changed().await.is_err() {
                    return Err(ErrorData::internal_error("cannot notify", None));
                }
                CallToolResult::success(vec![ContentBlock::text("grown")])
            }
            other => return Err(ErrorData::invalid_params(format!("no tool {other}"), None)),
        };
        Ok(result.into())
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let service = TestServer::default().serve(stdio()).await?;
    service.waiting().await?;
    Ok(())
}
