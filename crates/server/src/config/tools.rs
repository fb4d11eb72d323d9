//! The `[tools]` settings: which built-in tools the model may call, the
//! deployment's external tools (`[[tools.mcp]]` servers and
//! `[[tools.http]]` webhooks), and the limits of the agent loop that runs
//! them.

use std::{collections::HashSet, time::Duration};

use anyhow::bail;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::tools::{
    builtin, is_valid_tool_name,
    mcp::{Backoff, McpSettings},
    AllowList, ToolSettings,
};

/// Longest MCP server name: it prefixes each of its tools' names
/// (`<server>__<tool>`), which must fit in 64 characters.
pub const MAX_MCP_SERVER_NAME: usize = 24;

/// An MCP server (`[[tools.mcp]]`): a command to run and talk to over its
/// stdio, or the URL of a streamable HTTP endpoint.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct McpServerConfig {
    /// Prefix of its tools' names as the model sees them (`<name>__<tool>`).
    pub name: String,
    /// The program to start (stdio transport).
    #[serde(default)]
    pub command: Option<String>,
    /// Its arguments.
    #[serde(default)]
    pub args: Vec<String>,
    /// A streamable HTTP endpoint instead of a command.
    #[serde(default)]
    pub url: Option<String>,
}

/// A webhook tool (`[[tools.http]]`): the model calls it, we POST the call,
/// signed, to the team's backend.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct HttpToolConfig {
    /// The tool's name as the model sees it.
    pub name: String,
    pub description: String,
    /// JSON Schema of the arguments.
    pub parameters: Value,
    /// Where calls are POSTed.
    pub url: String,
    /// The environment variable holding the signing secret (never the
    /// secret itself, so the file can be shared).
    pub secret_env: String,
}

/// Tools (`[tools]`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct ToolsConfig {
    /// Built-in tools offered to the model, by name; empty offers none.
    pub enabled: Vec<String>,
    /// Rounds of tool calls one reply may run; the model is then asked to
    /// answer without more calls.
    pub max_tool_rounds: u32,
    /// A tool call still running after this many seconds fails with `timeout`.
    pub tool_timeout_secs: u64,
    /// A tool result whose JSON is longer than this fails with `result_too_large`.
    pub max_result_bytes: usize,
    /// MCP servers whose tools are offered to the model.
    pub mcp: Vec<McpServerConfig>,
    /// Webhook tools.
    pub http: Vec<HttpToolConfig>,
    /// Glob patterns of the external tools (MCP `<server>__<tool>` names
    /// and webhook names) that may be offered; unset offers every one
    /// declared, `[]` none.
    pub allow: Option<Vec<String>>,
    /// First wait before restarting an MCP server that stopped; doubled on
    /// each failure in a row.
    pub mcp_restart_min_ms: u64,
    /// Longest wait between restarts.
    pub mcp_restart_max_secs: u64,
    /// Longest message (one line of JSON) a stdio MCP server may send;
    /// a longer one is dropped as it is read.
    pub mcp_max_message_bytes: usize,
}

impl Default for ToolsConfig {
    fn default() -> Self {
        Self {
            enabled: builtin::NAMES
                .iter()
                .map(|name| (*name).to_owned())
                .collect(),
            max_tool_rounds: 4,
            tool_timeout_secs: 10,
            max_result_bytes: 16 * 1024,
            mcp: Vec::new(),
            http: Vec::new(),
            allow: None,
            mcp_restart_min_ms: 500,
            mcp_restart_max_secs: 60,
            mcp_max_message_bytes: 1024 * 1024,
        }
    }
}

impl ToolsConfig {
    /// Check the settings; with tools enabled, a `tool` event must fit in a
    /// frame of `max_frame_bytes` (the result, or the model's argument
    /// text, plus room for the other fields).
    pub(super) fn validate(&self, max_frame_bytes: usize) -> anyhow::Result<()> {
        if let Some(unknown) = self
            .enabled
            .iter()
            .find(|name| !builtin::NAMES.contains(&name.as_str()))
        {
            bail!(
                "invalid configuration: tools.enabled names an unknown tool `{unknown}` (known: {})",
                builtin::NAMES.join(", ")
            );
        }
        if self.max_tool_rounds == 0 || self.tool_timeout_secs == 0 || self.max_result_bytes == 0 {
            bail!("invalid configuration: tools.max_tool_rounds, tools.tool_timeout_secs and tools.max_result_bytes must be greater than 0");
        }
        let largest = self
            .max_result_bytes
            .max(colloquy_ai::openai::MAX_TOOL_ARGUMENT_BYTES);
        self.validate_external()?;
        let any_tools = !self.enabled.is_empty() || !self.mcp.is_empty() || !self.http.is_empty();
        if any_tools && largest.saturating_add(4096) > max_frame_bytes {
            bail!("invalid configuration: tools.max_result_bytes (and 64 KiB of tool arguments) + 4096 must not exceed max_frame_bytes");
        }
        Ok(())
    }

    /// Check the `[[tools.mcp]]` and `[[tools.http]]` entries: valid,
    /// distinct names; one transport per MCP server.
    fn validate_external(&self) -> anyhow::Result<()> {
        if self.mcp_restart_min_ms == 0
            || self.mcp_restart_max_secs == 0
            || self.mcp_max_message_bytes == 0
        {
            bail!("invalid configuration: tools.mcp_restart_min_ms, tools.mcp_restart_max_secs and tools.mcp_max_message_bytes must be greater than 0");
        }
        self.allow_list()?;
        let mut servers = HashSet::new();
        for server in &self.mcp {
            if server.name.len() > MAX_MCP_SERVER_NAME
                || server.name.contains("__")
                || !is_valid_tool_name(&server.name)
            {
                bail!("invalid configuration: tools.mcp name `{}` must be 1 to {MAX_MCP_SERVER_NAME} letters, digits, `_` or `-`, without `__`", server.name);
            }
            if !servers.insert(server.name.as_str()) {
                bail!(
                    "invalid configuration: two tools.mcp servers are named `{}`",
                    server.name
                );
            }
            match (&server.command, &server.url) {
                (Some(_), None) => {}
                (None, Some(url)) if reqwest::Url::parse(url).is_ok() => {}
                (None, Some(_)) => bail!(
                    "invalid configuration: tools.mcp `{}` has an invalid url",
                    server.name
                ),
                _ => bail!(
                    "invalid configuration: tools.mcp `{}` needs either `command` or `url`",
                    server.name
                ),
            }
        }
        let mut names: HashSet<&str> = builtin::NAMES.iter().copied().collect();
        for tool in &self.http {
            if !is_valid_tool_name(&tool.name) || tool.name.contains("__") {
                bail!("invalid configuration: tools.http name `{}` must be 1 to 64 letters, digits, `_` or `-`, without `__`", tool.name);
            }
            if !names.insert(tool.name.as_str()) {
                bail!(
                    "invalid configuration: tools.http `{}` repeats a tool name",
                    tool.name
                );
            }
            if reqwest::Url::parse(&tool.url).is_err() {
                bail!(
                    "invalid configuration: tools.http `{}` has an invalid url",
                    tool.name
                );
            }
            if tool.secret_env.is_empty() {
                bail!(
                    "invalid configuration: tools.http `{}` needs `secret_env`",
                    tool.name
                );
            }
        }
        Ok(())
    }

    /// The allow-list of external tools (`tools.allow`).
    pub fn allow_list(&self) -> anyhow::Result<AllowList> {
        match &self.allow {
            None => Ok(AllowList::everything()),
            Some(patterns) => AllowList::only(patterns).map_err(|e| {
                anyhow::anyhow!("invalid configuration: tools.allow has an invalid pattern: {e}")
            }),
        }
    }

    /// How MCP servers are run: when a stopped one is restarted, and the
    /// longest message a stdio one may send.
    pub fn mcp_settings(&self) -> McpSettings {
        McpSettings {
            restart: Backoff::new(
                Duration::from_millis(self.mcp_restart_min_ms),
                Duration::from_secs(self.mcp_restart_max_secs),
            ),
            max_message_bytes: self.mcp_max_message_bytes,
        }
    }

    /// The limits every call runs under.
    pub fn settings(&self) -> ToolSettings {
        ToolSettings {
            call_timeout: Duration::from_secs(self.tool_timeout_secs),
            max_result_bytes: self.max_result_bytes,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_built_in_is_enabled_by_default_and_unknown_names_are_refused() {
        ToolsConfig::default().validate(256 * 1024).unwrap();
        assert!(ToolsConfig::default().validate(32 * 1024).is_err());
        let typo = ToolsConfig {
            enabled: vec!["calculator".into()],
            ..ToolsConfig::default()
        };
        let error = typo.validate(256 * 1024).unwrap_err().to_string();
        assert!(error.contains("calculator"), "{error}");
        let no_rounds = ToolsConfig {
            max_tool_rounds: 0,
            ..ToolsConfig::default()
        };
        assert!(no_rounds.validate(256 * 1024).is_err());
    }

    #[test]
    fn external_tools_need_distinct_valid_names_and_one_transport() {
        let server = |name: &str, command: Option<&str>, url: Option<&str>| McpServerConfig {
            name: name.into(),
            command: command.map(Into::into),
            args: Vec::new(),
            url: url.map(Into::into),
        };
        let with_mcp = |servers: Vec<McpServerConfig>| ToolsConfig {
            mcp: servers,
            ..ToolsConfig::default()
        };
        with_mcp(vec![server("files", Some("mcp-files"), None)])
            .validate(256 * 1024)
            .unwrap();
        for bad in [
            vec![server("files", None, None)],
            vec![server("files", Some("a"), Some("http://x"))],
            vec![server("a__b", Some("a"), None)],
            vec![
                server("files", Some("a"), None),
                server("files", Some("b"), None),
            ],
            vec![server("files", None, Some("not a url"))],
        ] {
            assert!(
                with_mcp(bad.clone()).validate(256 * 1024).is_err(),
                "{bad:?}"
            );
        }
        let webhook = |name: &str| HttpToolConfig {
            name: name.into(),
            description: String::new(),
            parameters: serde_json::json!({ "type": "object" }),
            url: "http://backend.test/tool".into(),
            secret_env: "TOOL_SECRET".into(),
        };
        let with_http = |tools: Vec<HttpToolConfig>| ToolsConfig {
            http: tools,
            ..ToolsConfig::default()
        };
        with_http(vec![webhook("lookup_order")])
            .validate(256 * 1024)
            .unwrap();
        assert!(with_http(vec![webhook("calculate")])
            .validate(256 * 1024)
            .is_err());
        assert!(with_http(vec![webhook("a b")])
            .validate(256 * 1024)
            .is_err());
        let bad_pattern = ToolsConfig {
            allow: Some(vec!["files__[".into()]),
            ..ToolsConfig::default()
        };
        assert!(bad_pattern.validate(256 * 1024).is_err());
    }
}
