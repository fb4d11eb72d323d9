//! Tools the model may call during a reply (the agent loop in
//! [`crate::turn`] runs them): what a tool is ([`Tool`]), the registry that
//! offers the enabled ones to the model and runs a call safely
//! ([`ToolRegistry`]: unknown names refused, arguments checked against the
//! tool's JSON Schema, a time limit, a size limit on results), and the
//! built-in tools ([`builtin`]), and the deployment's external tools:
//! MCP servers ([`mcp`]) and signed HTTP webhooks ([`webhook`]), offered
//! only as far as the deployment's allow-list ([`AllowList`]) lets them.
//!
//! A tool only ever acts for the conversation's owner: the
//! [`ToolContext`] it gets names that user, and every built-in scopes its
//! queries to them. An MCP server learns nothing of the user beyond the
//! arguments the model wrote; a webhook is told the owner's id so the
//! team's backend can scope its answer.

mod allow;
pub mod builtin;
pub mod mcp;
mod registry;
pub mod webhook;

use async_trait::async_trait;
use colloquy_ai::ToolDefinition;
use serde_json::Value;
use uuid::Uuid;

pub use allow::AllowList;
pub use registry::{is_valid_tool_name, InvalidTool, ToolOutput, ToolRegistry, ToolSettings};

use crate::store::{Pool, StoreError};

/// Who a call runs for, and what it may use.
#[derive(Clone)]
pub struct ToolContext {
    pub db: Pool,
    /// The conversation's owner: a tool reads and changes only their data.
    pub user_id: Uuid,
    pub conversation_id: Uuid,
    /// The model's id for this call (what the `tool` events carry).
    pub call_id: String,
}

/// Why a call failed: a stable code and a message that both the model and
/// the user see (so never internal details).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ToolFailure {
    pub code: String,
    pub message: String,
}

impl ToolFailure {
    pub fn new(code: &str, message: impl Into<String>) -> Self {
        Self {
            code: code.to_owned(),
            message: message.into(),
        }
    }

    /// A storage failure inside a tool, without its details.
    pub fn storage(error: StoreError) -> Self {
        tracing::warn!(%error, "a tool's query failed");
        Self::new("tool_failed", "The tool could not read or save data.")
    }
}

/// Something the model can call.
#[async_trait]
pub trait Tool: Send + Sync + 'static {
    /// Name (`^[a-zA-Z0-9_-]{1,64}$`), description and JSON Schema of the arguments.
    fn definition(&self) -> ToolDefinition;

    /// Run the call. `arguments` already satisfy the schema. Dropping the
    /// future cancels the call (stop, shutdown, time-out).
    async fn call(&self, context: &ToolContext, arguments: Value) -> Result<Value, ToolFailure>;

    /// Whether the tool can run now. One that cannot (its MCP server is
    /// restarting) is not offered to the model, and a call to it fails
    /// with `tool_unavailable`.
    fn available(&self) -> bool {
        true
    }
}
