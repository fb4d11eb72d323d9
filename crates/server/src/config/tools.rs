//! The `[tools]` settings: which built-in tools the model may call, and the
//! limits of the agent loop that runs them.

use std::time::Duration;

use anyhow::bail;
use serde::{Deserialize, Serialize};

use crate::tools::{builtin, ToolSettings};

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
        if !self.enabled.is_empty() && largest.saturating_add(4096) > max_frame_bytes {
            bail!("invalid configuration: tools.max_result_bytes (and 64 KiB of tool arguments) + 4096 must not exceed max_frame_bytes");
        }
        Ok(())
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
}
