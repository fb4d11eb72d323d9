//! The tools every deployment has, each enabled by name in `tools.enabled`.

mod calculate;
mod plans;
mod search;
mod time;

use std::sync::Arc;

use super::{registry::InvalidTool, Tool, ToolRegistry, ToolSettings};

/// The names of the built-in tools, in the order they are offered.
pub const NAMES: &[&str] = &[
    "calculate",
    "get_current_time",
    "search_conversations",
    "get_plan_progress",
    "complete_step",
];

/// The built-in tool called `name`, if there is one.
pub fn by_name(name: &str) -> Option<Arc<dyn Tool>> {
    let tool: Arc<dyn Tool> = match name {
        "calculate" => Arc::new(calculate::Calculate),
        "get_current_time" => Arc::new(time::CurrentTime),
        "search_conversations" => Arc::new(search::SearchConversations),
        "get_plan_progress" => Arc::new(plans::GetPlanProgress),
        "complete_step" => Arc::new(plans::CompleteStep),
        _ => return None,
    };
    Some(tool)
}

/// A registry offering the built-in tools named in `enabled` (unknown
/// names are skipped: the configuration check refuses them first).
pub fn registry(enabled: &[String], settings: ToolSettings) -> Result<ToolRegistry, InvalidTool> {
    let registry = ToolRegistry::new(settings);
    for tool in enabled.iter().filter_map(|name| by_name(name)) {
        registry.register(tool)?;
    }
    Ok(registry)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_listed_name_is_a_tool_of_that_name() {
        for name in NAMES {
            let tool = by_name(name).expect("a built-in");
            assert_eq!(tool.definition().name, *name);
        }
        assert!(by_name("rm").is_none());
    }
}
