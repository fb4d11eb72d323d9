//! `[[models]]`: more models users may pick per message, besides the
//! default one (`model`). Each is the embedded model or an OpenAI-compatible
//! upstream with its own base URL.

use anyhow::bail;
use serde::{Deserialize, Serialize};

/// Longest model id, in characters (it travels in every `text` event).
pub const MAX_MODEL_ID_CHARS: usize = 64;

/// One more model offered to clients.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelEntry {
    /// What a client sends as a message's `model`; `provider:model` when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The name a picker shows; the id when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `local` or `openai:<model>`, as `COLLOQUY_MODEL` takes it.
    pub model: String,
    /// The upstream's OpenAI-compatible base URL; `OPENAI_BASE_URL` (or
    /// OpenAI's) when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_url: Option<String>,
    /// The environment variable holding this upstream's key. Unset, an entry
    /// without its own `base_url` uses `OPENAI_API_KEY` (the same upstream as
    /// the default model); one with its own gets no key, so the OpenAI key is
    /// never sent to a server the operator did not pair it with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key_env: Option<String>,
}

impl ModelEntry {
    /// The entry's id, given the provider's own `provider:model` id.
    pub fn id_or(&self, provider_id: String) -> String {
        self.id.clone().unwrap_or(provider_id)
    }

    /// The key for this upstream, read from the environment now.
    pub fn api_key(&self) -> anyhow::Result<Option<String>> {
        let read = |name: &str| std::env::var(name).ok().filter(|k| !k.is_empty());
        match (&self.api_key_env, &self.base_url) {
            (Some(name), _) => match read(name) {
                Some(key) => Ok(Some(key)),
                None => bail!(
                    "invalid configuration: models entry `{}` names api_key_env `{name}`, which is not set",
                    self.model
                ),
            },
            (None, None) => Ok(read("OPENAI_API_KEY")),
            (None, Some(_)) => Ok(None),
        }
    }
}

/// Check the entries' shape: a model spec each, ids well-formed and unique
/// (clashes with the default model's id are found when providers are built).
pub fn validate(entries: &[ModelEntry]) -> anyhow::Result<()> {
    let mut seen = std::collections::HashSet::new();
    for entry in entries {
        let spec = entry
            .model
            .parse::<colloquy_ai::ModelSpec>()
            .map_err(|e| anyhow::anyhow!("invalid configuration: models entry: {e}"))?;
        match spec {
            colloquy_ai::ModelSpec::None => {
                bail!("invalid configuration: a models entry cannot be `none`")
            }
            colloquy_ai::ModelSpec::Local if entry.base_url.is_some() => bail!(
                "invalid configuration: models entry `local` takes no base_url (it runs in process)"
            ),
            _ => {}
        }
        if let Some(id) = &entry.id {
            let length = id.chars().count();
            if length == 0 || length > MAX_MODEL_ID_CHARS || id.chars().any(char::is_control) {
                bail!("invalid configuration: models entry id {id:?} must be 1 to {MAX_MODEL_ID_CHARS} printable characters");
            }
        }
        // Ids defaulted from the spec are compared by the spec text.
        let key = entry.id.clone().unwrap_or_else(|| entry.model.clone());
        if !seen.insert(key.clone()) {
            bail!(
                "invalid configuration: two models entries share the id `{key}`; give each an `id`"
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(model: &str, id: Option<&str>) -> ModelEntry {
        ModelEntry {
            id: id.map(Into::into),
            name: None,
            model: model.into(),
            base_url: None,
            api_key_env: None,
        }
    }

    #[test]
    fn entries_need_a_real_model_and_distinct_ids() {
        validate(&[entry("openai:a", None), entry("openai:b", None)]).unwrap();
        let none = validate(&[entry("none", None)]).unwrap_err().to_string();
        assert!(none.contains("none"), "{none}");
        let twice = validate(&[entry("openai:a", None), entry("openai:a", None)])
            .unwrap_err()
            .to_string();
        assert!(twice.contains("openai:a"), "{twice}");
        validate(&[entry("openai:a", Some("x")), entry("openai:a", Some("y"))]).unwrap();
        assert!(validate(&[entry("openai:a", Some(""))]).is_err());
        assert!(validate(&[entry("magic", None)]).is_err());
    }

    #[test]
    fn a_missing_key_variable_is_named() {
        let mut with_env = entry("openai:a", None);
        with_env.api_key_env = Some("COLLOQUY_TEST_SURELY_UNSET_KEY".into());
        let error = with_env.api_key().unwrap_err().to_string();
        assert!(error.contains("COLLOQUY_TEST_SURELY_UNSET_KEY"), "{error}");
        let mut elsewhere = entry("openai:a", None);
        elsewhere.base_url = Some("http://127.0.0.1:9/v1".into());
        assert_eq!(elsewhere.api_key().unwrap(), None);
    }

    #[test]
    fn unknown_keys_in_an_entry_are_refused() {
        let parsed: Result<ModelEntry, _> =
            toml::from_str("model = \"openai:a\"\nbase_ulr = \"x\"");
        assert!(parsed.is_err());
    }
}
