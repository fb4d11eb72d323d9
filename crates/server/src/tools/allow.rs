//! The deployment's allow-list of external tools (`tools.allow`): which
//! names of MCP server tools (`<server>__<tool>`) and webhook tools may be
//! offered to the model. An MCP server chooses its own tool list, and may
//! change it while running; the allow-list is how a deployment keeps only
//! the tools it reviewed. Built-in tools are chosen by `tools.enabled`
//! instead.

/// Which external tool names may be offered: every name (no list given),
/// or those matching one of the list's glob patterns (`*` any run of
/// characters, `?` one character, `[...]` a set).
#[derive(Debug, Clone, Default)]
pub struct AllowList {
    patterns: Option<Vec<glob::Pattern>>,
}

impl AllowList {
    /// No list: every external tool the deployment declares is offered.
    pub fn everything() -> Self {
        Self::default()
    }

    /// Only names matching one of `patterns` (none for an empty list).
    pub fn only(patterns: &[String]) -> Result<Self, glob::PatternError> {
        let patterns = patterns
            .iter()
            .map(|pattern| glob::Pattern::new(pattern))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            patterns: Some(patterns),
        })
    }

    /// Whether the external tool offered as `name` may be.
    pub fn allows(&self, name: &str) -> bool {
        match &self.patterns {
            None => true,
            Some(patterns) => patterns.iter().any(|pattern| pattern.matches(name)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_list_allows_everything_and_a_list_only_its_matches() {
        assert!(AllowList::everything().allows("files__delete"));
        let list = AllowList::only(&["files__read*".into(), "lookup_order".into()]).unwrap();
        assert!(list.allows("files__read_file"));
        assert!(list.allows("lookup_order"));
        assert!(!list.allows("files__delete"));
        assert!(
            !list.allows("lookup_order_2"),
            "a plain name matches only itself"
        );
        assert!(!AllowList::only(&[]).unwrap().allows("anything"));
        assert!(AllowList::only(&["[".into()]).is_err());
    }
}
