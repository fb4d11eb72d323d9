//! The tools offered to the model and the one way a call is run: the name
//! looked up, the argument text parsed and checked against the tool's JSON
//! Schema (compiled once, when the tool is registered), the call bounded by
//! a time limit, its result by a size limit. Every failure becomes a
//! [`ToolFailure`] the model can read and react to.

use std::{
    collections::BTreeMap,
    sync::{Arc, RwLock},
    time::Duration,
};

use colloquy_ai::{ToolCall, ToolDefinition};
use serde_json::Value;

use super::{AllowList, Tool, ToolContext, ToolFailure};

/// Limits every call runs under.
#[derive(Debug, Clone, Copy)]
pub struct ToolSettings {
    /// A call still running after this fails with `timeout`.
    pub call_timeout: Duration,
    /// A result whose JSON is longer than this fails with `result_too_large`.
    pub max_result_bytes: usize,
}

/// What a successful call returned: the value, and its JSON text (what
/// the model reads and what is stored).
#[derive(Debug, Clone, PartialEq)]
pub struct ToolOutput {
    pub value: Value,
    pub json: String,
}

/// Most schema violations listed in one `invalid_arguments` message.
const MAX_REPORTED_VIOLATIONS: usize = 3;

struct Registered {
    tool: Arc<dyn Tool>,
    definition: ToolDefinition,
    validator: jsonschema::Validator,
}

/// Why a tool could not be registered.
#[derive(Debug, thiserror::Error)]
pub enum InvalidTool {
    #[error("tool name {0:?} must be 1 to 64 letters, digits, `_` or `-`")]
    Name(String),
    #[error("tool {name}: its arguments schema does not compile: {reason}")]
    Schema { name: String, reason: String },
}

/// The tools this server offers, by name.
pub struct ToolRegistry {
    // A lock rather than a fixed map: tools may come and go while the
    // server runs (an embedding program registering its own). Held only to
    // copy an `Arc` out, never across a call.
    tools: RwLock<BTreeMap<String, Arc<Registered>>>,
    settings: ToolSettings,
    /// Which external tools [`ToolRegistry::register_external`] accepts.
    allow: AllowList,
}

impl ToolRegistry {
    /// A registry with no tools.
    pub fn new(settings: ToolSettings) -> Self {
        Self {
            tools: RwLock::new(BTreeMap::new()),
            settings,
            allow: AllowList::everything(),
        }
    }

    /// This registry, accepting only the external tools `allow` lets in.
    pub fn allowing(mut self, allow: AllowList) -> Self {
        self.allow = allow;
        self
    }

    /// The limits calls run under.
    pub fn settings(&self) -> ToolSettings {
        self.settings
    }

    /// Offer `tool` to the model from the next reply on (replacing one of
    /// the same name).
    pub fn register(&self, tool: Arc<dyn Tool>) -> Result<(), InvalidTool> {
        let definition = tool.definition();
        if !is_valid_tool_name(&definition.name) {
            return Err(InvalidTool::Name(definition.name));
        }
        let validator =
            jsonschema::validator_for(&definition.parameters).map_err(|e| InvalidTool::Schema {
                name: definition.name.clone(),
                reason: e.to_string(),
            })?;
        let registered = Arc::new(Registered {
            tool,
            definition: definition.clone(),
            validator,
        });
        self.write().insert(definition.name, registered);
        Ok(())
    }

    /// Offer an external tool (an MCP server's or a webhook) if the
    /// allow-list lets its name in; `Ok(false)` when it does not, and then
    /// the tool is neither offered nor callable.
    pub fn register_external(&self, tool: Arc<dyn Tool>) -> Result<bool, InvalidTool> {
        let name = tool.definition().name;
        if !self.allow.allows(&name) {
            tracing::info!(tool = %name, "an external tool is not on tools.allow: not offered");
            return Ok(false);
        }
        self.register(tool)?;
        Ok(true)
    }

    /// Stop offering the tool called `name` (an MCP server no longer lists it).
    pub fn unregister(&self, name: &str) {
        self.write().remove(name);
    }

    /// The definitions to offer the model, by name: the tools that can run now.
    pub fn definitions(&self) -> Vec<ToolDefinition> {
        self.read()
            .values()
            .filter(|registered| registered.tool.available())
            .map(|registered| registered.definition.clone())
            .collect()
    }

    /// Whether no tool is offered.
    pub fn is_empty(&self) -> bool {
        self.read().is_empty()
    }

    /// Run `call` for `context`'s user under the registry's limits.
    pub async fn call(
        &self,
        context: &ToolContext,
        call: &ToolCall,
    ) -> Result<ToolOutput, ToolFailure> {
        let registered = self.read().get(&call.name).cloned().ok_or_else(|| {
            ToolFailure::new(
                "unknown_tool",
                format!("There is no tool named {:?}.", call.name),
            )
        })?;
        if !registered.tool.available() {
            return Err(unavailable());
        }
        let arguments = parse_arguments(&call.arguments)?;
        let violations: Vec<String> = registered
            .validator
            .iter_errors(&arguments)
            .take(MAX_REPORTED_VIOLATIONS)
            .map(|error| match error.instance_path().as_str() {
                "" => error.to_string(),
                path => format!("{path}: {error}"),
            })
            .collect();
        if !violations.is_empty() {
            return Err(ToolFailure::new(
                "invalid_arguments",
                format!(
                    "The arguments do not match the tool's schema: {}",
                    violations.join("; ")
                ),
            ));
        }
        let timeout = self.settings.call_timeout;
        let value = tokio::time::timeout(timeout, registered.tool.call(context, arguments))
            .await
            .map_err(|_| {
                ToolFailure::new(
                    "timeout",
                    format!("The tool did not finish within {} s.", timeout.as_secs()),
                )
            })??;
        let json = serde_json::to_string(&value)
            .map_err(|_| ToolFailure::new("tool_failed", "The tool's result is not JSON."))?;
        if json.len() > self.settings.max_result_bytes {
            return Err(ToolFailure::new(
                "result_too_large",
                format!(
                    "The result is larger than {} bytes.",
                    self.settings.max_result_bytes
                ),
            ));
        }
        Ok(ToolOutput { value, json })
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, Arc<Registered>>> {
        self.tools
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<String, Arc<Registered>>> {
        self.tools
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Whether `name` is a valid function name for the model:
/// `^[a-zA-Z0-9_-]{1,64}$`.
pub fn is_valid_tool_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// The failure of a call to a tool that cannot run now.
pub(super) fn unavailable() -> ToolFailure {
    ToolFailure::new(
        "tool_unavailable",
        "The tool is unavailable right now; try again later.",
    )
}

/// The model's argument text as JSON; nothing at all means no arguments.
fn parse_arguments(text: &str) -> Result<Value, ToolFailure> {
    if text.trim().is_empty() {
        return Ok(Value::Object(Default::default()));
    }
    serde_json::from_str(text).map_err(|e| {
        ToolFailure::new(
            "invalid_arguments",
            format!("The arguments are not valid JSON: {e}"),
        )
    })
}

#[cfg(test)]
mod tests {
    use async_trait::async_trait;
    use serde_json::json;

    use super::*;

    /// Echoes its `text` argument back, after `delay`.
    struct Echo {
        delay: Duration,
    }

    #[async_trait]
    impl Tool for Echo {
        fn definition(&self) -> ToolDefinition {
            ToolDefinition {
                name: "echo".into(),
                description: "Repeat the text.".into(),
                parameters: json!({
                    "type": "object",
                    "properties": { "text": { "type": "string", "maxLength": 10 } },
                    "required": ["text"],
                    "additionalProperties": false,
                }),
            }
        }

        async fn call(&self, _: &ToolContext, arguments: Value) -> Result<Value, ToolFailure> {
            tokio::time::sleep(self.delay).await;
            Ok(json!({ "echo": arguments["text"] }))
        }
    }

    /// A context whose database is never opened: these tools do not use it.
    fn context() -> ToolContext {
        sqlx::any::install_default_drivers();
        let db = sqlx::any::AnyPoolOptions::new()
            .connect_lazy("sqlite::memory:")
            .unwrap();
        ToolContext {
            db,
            user_id: uuid::Uuid::nil(),
            conversation_id: uuid::Uuid::nil(),
            call_id: "c1".into(),
        }
    }

    fn registry(delay: Duration, max_result_bytes: usize) -> ToolRegistry {
        let registry = ToolRegistry::new(ToolSettings {
            call_timeout: Duration::from_secs(1),
            max_result_bytes,
        });
        registry.register(Arc::new(Echo { delay })).unwrap();
        registry
    }

    fn call(name: &str, arguments: &str) -> ToolCall {
        ToolCall {
            id: "c1".into(),
            name: name.into(),
            arguments: arguments.into(),
        }
    }

    fn code(result: Result<ToolOutput, ToolFailure>) -> String {
        result.expect_err("the call fails").code
    }

    #[tokio::test]
    async fn a_valid_call_returns_its_value_and_json() {
        let context = context();
        let output = registry(Duration::ZERO, 1024)
            .call(&context, &call("echo", r#"{"text":"hi"}"#))
            .await
            .unwrap();
        assert_eq!(output.value, json!({ "echo": "hi" }));
        assert_eq!(output.json, r#"{"echo":"hi"}"#);
    }

    #[tokio::test]
    async fn unknown_names_bad_json_and_schema_violations_are_refused_before_running() {
        let context = context();
        let registry = registry(Duration::ZERO, 1024);
        assert_eq!(
            code(registry.call(&context, &call("rm", "{}")).await),
            "unknown_tool"
        );
        assert_eq!(
            code(registry.call(&context, &call("echo", "{\"text\":")).await),
            "invalid_arguments"
        );
        let violation = registry
            .call(
                &context,
                &call("echo", r#"{"text":"far too long text","x":1}"#),
            )
            .await
            .unwrap_err();
        assert_eq!(violation.code, "invalid_arguments");
        assert!(violation.message.contains("/text"), "{}", violation.message);
        assert_eq!(
            code(registry.call(&context, &call("echo", "")).await),
            "invalid_arguments",
            "no arguments at all lacks the required `text`"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_call_times_out_and_a_big_result_is_refused() {
        let context = context();
        let slow = registry(Duration::from_secs(5), 1024);
        assert_eq!(
            code(slow.call(&context, &call("echo", r#"{"text":"hi"}"#)).await),
            "timeout"
        );
        let small = registry(Duration::ZERO, 8);
        assert_eq!(
            code(
                small
                    .call(&context, &call("echo", r#"{"text":"hi"}"#))
                    .await
            ),
            "result_too_large"
        );
    }

    #[tokio::test]
    async fn an_external_tool_off_the_allow_list_is_neither_offered_nor_callable() {
        let context = context();
        let closed = ToolRegistry::new(registry(Duration::ZERO, 1024).settings())
            .allowing(AllowList::only(&["other_*".into()]).unwrap());
        let echo = Arc::new(Echo {
            delay: Duration::ZERO,
        });
        assert!(!closed.register_external(echo.clone()).unwrap());
        assert!(closed.definitions().is_empty());
        assert_eq!(
            code(
                closed
                    .call(&context, &call("echo", r#"{"text":"hi"}"#))
                    .await
            ),
            "unknown_tool"
        );
        let open = ToolRegistry::new(closed.settings());
        assert!(open.register_external(echo).unwrap(), "no list lets it in");
        assert_eq!(open.definitions().len(), 1);
    }

    #[tokio::test]
    async fn a_tool_that_cannot_run_is_not_offered_and_its_calls_fail_as_unavailable() {
        struct Down;
        #[async_trait]
        impl Tool for Down {
            fn definition(&self) -> ToolDefinition {
                ToolDefinition {
                    name: "down".into(),
                    description: String::new(),
                    parameters: json!({ "type": "object" }),
                }
            }
            async fn call(&self, _: &ToolContext, _: Value) -> Result<Value, ToolFailure> {
                Ok(Value::Null)
            }
            fn available(&self) -> bool {
                false
            }
        }
        let context = context();
        let registry = registry(Duration::ZERO, 1024);
        registry.register(Arc::new(Down)).unwrap();
        let names: Vec<String> = registry.definitions().into_iter().map(|d| d.name).collect();
        assert_eq!(names, ["echo"]);
        assert_eq!(
            code(registry.call(&context, &call("down", "{}")).await),
            "tool_unavailable"
        );
        registry.unregister("down");
        assert_eq!(
            code(registry.call(&context, &call("down", "{}")).await),
            "unknown_tool"
        );
    }

    #[test]
    fn names_and_schemas_are_checked_when_registering() {
        struct Named(&'static str, Value);
        #[async_trait]
        impl Tool for Named {
            fn definition(&self) -> ToolDefinition {
                ToolDefinition {
                    name: self.0.into(),
                    description: String::new(),
                    parameters: self.1.clone(),
                }
            }
            async fn call(&self, _: &ToolContext, _: Value) -> Result<Value, ToolFailure> {
                Ok(Value::Null)
            }
        }
        let registry = registry(Duration::ZERO, 1024);
        let bad_name = registry.register(Arc::new(Named("rm -rf", json!({}))));
        assert!(matches!(bad_name, Err(InvalidTool::Name(_))));
        let bad_schema = registry.register(Arc::new(Named("ok", json!({ "type": 5 }))));
        assert!(matches!(bad_schema, Err(InvalidTool::Schema { .. })));
        let names: Vec<String> = registry.definitions().into_iter().map(|d| d.name).collect();
        assert_eq!(names, ["echo"]);
    }
}
