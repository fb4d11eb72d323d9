//! The models users may pick: the default one (`model`, as the selector
//! builds it) first, then the `[[models]]` entries, each a provider built
//! once at start (with no default model, the first entry is the default). A message names one by id; an unknown id is refused at the
//! transport's edge, so a turn only ever holds a model that exists.

use std::sync::Arc;

use anyhow::{bail, Context};
use colloquy_ai::{ModelSpec, Provider};

use crate::{
    config::{Config, ModelEntry},
    input::InvalidInput,
};

/// One model a client may choose.
#[derive(Clone)]
pub struct ModelChoice {
    /// What a client sends as a message's `model`.
    pub id: String,
    /// What a picker shows.
    pub name: String,
    pub provider: Arc<dyn Provider>,
}

impl std::fmt::Debug for ModelChoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ModelChoice")
            .field("id", &self.id)
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// Every model of this server; the first is the default.
#[derive(Clone, Default)]
pub struct Models {
    choices: Vec<ModelChoice>,
}

impl Models {
    /// Only `default` (or none): the server as configured by `model` alone.
    pub fn single(default: Option<Arc<dyn Provider>>) -> Self {
        let choices = default
            .into_iter()
            .map(|provider| {
                let id = provider.info().id();
                ModelChoice {
                    name: id.clone(),
                    id,
                    provider,
                }
            })
            .collect();
        Self { choices }
    }

    /// Build the default model and every `[[models]]` entry. Blocking: the
    /// embedded model reads its file (it is loaded once, however often named).
    pub fn load(config: &Config) -> anyhow::Result<Self> {
        let base = config.ai_config();
        let default = colloquy_ai::select_provider(&base)?;
        let default_is_local = base.spec()? == ModelSpec::Local;
        let mut models = Self::single(default);
        for entry in &config.models {
            let provider = match models.choices.first() {
                Some(first) if default_is_local && entry.model.trim() == "local" => {
                    first.provider.clone()
                }
                _ => build(config, entry)?,
            };
            let id = entry.id_or(provider.info().id());
            if models.find(&id).is_some() {
                bail!("invalid configuration: models entry `{id}` has the id of another model; give it an `id`");
            }
            models.choices.push(ModelChoice {
                name: entry.name.clone().unwrap_or_else(|| id.clone()),
                id,
                provider,
            });
        }
        Ok(models)
    }

    /// The model a message without `model` gets.
    pub fn default_provider(&self) -> Option<&Arc<dyn Provider>> {
        self.choices.first().map(|choice| &choice.provider)
    }

    /// Every model, the default first.
    pub fn choices(&self) -> &[ModelChoice] {
        &self.choices
    }

    /// The model with this id.
    pub fn find(&self, id: &str) -> Option<&ModelChoice> {
        self.choices.iter().find(|choice| choice.id == id)
    }

    /// The model a message asks for: none named, the default (`None`); a
    /// named one that exists; else `unknown_model`, whose text names no
    /// client input back.
    pub fn pick(&self, id: Option<&str>) -> Result<Option<ModelChoice>, InvalidInput> {
        let Some(id) = id else { return Ok(None) };
        self.find(id)
            .cloned()
            .map(Some)
            .ok_or_else(|| InvalidInput {
                code: "unknown_model",
                message:
                    "this server has no such model; pick one of /api/config's models.available"
                        .into(),
            })
    }
}

/// One entry's provider, with its own upstream and key.
fn build(config: &Config, entry: &ModelEntry) -> anyhow::Result<Arc<dyn Provider>> {
    let mut settings = config.ai_config();
    settings.model = Some(entry.model.clone());
    settings.openai_api_key = entry.api_key()?;
    if let Some(url) = &entry.base_url {
        settings.openai_base_url = Some(url.clone());
    }
    colloquy_ai::select_provider(&settings)
        .with_context(|| format!("models entry `{}`", entry.model))?
        .context("a models entry cannot be `none`")
}
