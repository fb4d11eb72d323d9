//! The model selector: turns `COLLOQUY_MODEL` and the provider settings into a
//! working [`Provider`] at start, or a startup error naming what to set.

use std::{str::FromStr, sync::Arc, time::Duration};

use crate::{
    local::LocalConfig,
    openai::{OpenAiConfig, OpenAiProvider, DEFAULT_BASE_URL},
    provider::Provider,
};

/// Model used with `openai` when `COLLOQUY_MODEL` names no model.
pub const DEFAULT_OPENAI_MODEL: &str = "gpt-4o-mini";

/// Which provider and model to use, parsed from `COLLOQUY_MODEL`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelSpec {
    /// No model: messages are stored and answered with a `no_model` error.
    None,
    /// The embedded local model (feature `local-llm`).
    Local,
    /// An OpenAI-compatible server with the given model name.
    OpenAi { model: String },
}

impl FromStr for ModelSpec {
    type Err = SelectError;

    /// Accepts `none`, `local`, `openai` and `openai:<model>`.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (provider, model) = match text.split_once(':') {
            Some((provider, model)) => (provider.trim(), Some(model.trim())),
            None => (text.trim(), None),
        };
        match (provider, model) {
            ("none", None) => Ok(ModelSpec::None),
            ("local", None) => Ok(ModelSpec::Local),
            ("local", Some(_)) => Ok(ModelSpec::Local),
            ("openai", None) => Ok(ModelSpec::OpenAi {
                model: DEFAULT_OPENAI_MODEL.into(),
            }),
            ("openai", Some(model)) if !model.is_empty() => Ok(ModelSpec::OpenAi {
                model: model.into(),
            }),
            _ => Err(SelectError::BadSpec(text.to_owned())),
        }
    }
}

/// Everything the selector needs; filled from the server's configuration.
#[derive(Clone, Default)]
pub struct AiConfig {
    /// `COLLOQUY_MODEL`, if set.
    pub model: Option<String>,
    /// `OPENAI_API_KEY` (environment only).
    pub openai_api_key: Option<String>,
    /// `OPENAI_BASE_URL`; the public OpenAI URL when unset.
    pub openai_base_url: Option<String>,
    pub connect_timeout: Duration,
    pub idle_timeout: Duration,
    /// Settings of the embedded model, used when the spec is [`ModelSpec::Local`].
    pub local: LocalConfig,
}

impl std::fmt::Debug for AiConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AiConfig")
            .field("model", &self.model)
            .field(
                "openai_api_key",
                &self.openai_api_key.as_ref().map(|_| "<redacted>"),
            )
            .field("openai_base_url", &self.openai_base_url)
            .finish()
    }
}

impl AiConfig {
    /// The spec `COLLOQUY_MODEL` asks for, or the default: OpenAI when a key
    /// is set, else the embedded model when compiled in, else none.
    pub fn spec(&self) -> Result<ModelSpec, SelectError> {
        match &self.model {
            Some(text) => text.parse(),
            None if self.openai_api_key.is_some() => Ok(ModelSpec::OpenAi {
                model: DEFAULT_OPENAI_MODEL.into(),
            }),
            None if cfg!(feature = "local-llm") => Ok(ModelSpec::Local),
            None => Ok(ModelSpec::None),
        }
    }
}

/// Why no provider could be built.
#[derive(Debug, thiserror::Error)]
pub enum SelectError {
    #[error(
        "COLLOQUY_MODEL={0:?} is not understood; use `local`, `openai`, `openai:<model>` or `none`"
    )]
    BadSpec(String),
    #[error("COLLOQUY_MODEL selects OpenAI at {DEFAULT_BASE_URL} but OPENAI_API_KEY is not set; set OPENAI_API_KEY, or set OPENAI_BASE_URL to a server that needs no key")]
    MissingOpenAiKey,
    #[error("COLLOQUY_MODEL=local, but this build has no embedded model; rebuild with `--features local-llm` or choose another model")]
    LocalNotCompiled,
    #[error("the {provider} provider could not start: {reason}")]
    Startup { provider: String, reason: String },
}

/// Build the configured provider. `Ok(None)` means no model is configured:
/// the server still runs, stores messages and answers them with `no_model`.
pub fn select_provider(config: &AiConfig) -> Result<Option<Arc<dyn Provider>>, SelectError> {
    match config.spec()? {
        ModelSpec::None => Ok(None),
        ModelSpec::Local => local_provider(&config.local),
        ModelSpec::OpenAi { model } => {
            let base_url = config
                .openai_base_url
                .clone()
                .unwrap_or_else(|| DEFAULT_BASE_URL.to_owned());
            let is_public_openai = base_url.trim_end_matches('/') == DEFAULT_BASE_URL;
            if is_public_openai && config.openai_api_key.is_none() {
                return Err(SelectError::MissingOpenAiKey);
            }
            let provider = OpenAiProvider::new(OpenAiConfig {
                base_url,
                api_key: config.openai_api_key.clone(),
                model,
                connect_timeout: config.connect_timeout,
                idle_timeout: config.idle_timeout,
            })
            .map_err(|e| SelectError::Startup {
                provider: "openai".into(),
                reason: e.to_string(),
            })?;
            Ok(Some(Arc::new(provider)))
        }
    }
}

/// The embedded model, loaded now so a missing file stops the start with a
/// message naming the path and the setup command.
#[cfg(feature = "local-llm")]
fn local_provider(config: &LocalConfig) -> Result<Option<Arc<dyn Provider>>, SelectError> {
    let provider = crate::local::LocalProvider::load(config).map_err(|e| SelectError::Startup {
        provider: "local".into(),
        reason: e.to_string(),
    })?;
    Ok(Some(Arc::new(provider)))
}

/// Without the feature there is nothing to load.
#[cfg(not(feature = "local-llm"))]
fn local_provider(_config: &LocalConfig) -> Result<Option<Arc<dyn Provider>>, SelectError> {
    Err(SelectError::LocalNotCompiled)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_model_specs() {
        assert_eq!("none".parse::<ModelSpec>().unwrap(), ModelSpec::None);
        assert_eq!("local".parse::<ModelSpec>().unwrap(), ModelSpec::Local);
        assert_eq!(
            "openai:gpt-4.1".parse::<ModelSpec>().unwrap(),
            ModelSpec::OpenAi {
                model: "gpt-4.1".into()
            }
        );
        assert!("openai:".parse::<ModelSpec>().is_err());
        assert!("magic".parse::<ModelSpec>().is_err());
    }

    #[test]
    fn public_openai_without_key_names_the_variable() {
        let config = AiConfig {
            model: Some("openai".into()),
            ..AiConfig::default()
        };
        let error = select_provider(&config).err().expect("must fail");
        assert!(error.to_string().contains("OPENAI_API_KEY"));
    }

    #[test]
    fn custom_base_url_needs_no_key() {
        let config = AiConfig {
            model: Some("openai:llama3".into()),
            openai_base_url: Some("http://127.0.0.1:11434/v1".into()),
            ..AiConfig::default()
        };
        let provider = select_provider(&config).unwrap().expect("a provider");
        assert_eq!(provider.info().id(), "openai:llama3");
    }

    #[cfg(not(feature = "local-llm"))]
    #[test]
    fn local_without_the_feature_says_how_to_rebuild() {
        let config = AiConfig {
            model: Some("local".into()),
            ..AiConfig::default()
        };
        let error = select_provider(&config).err().expect("must fail");
        assert!(matches!(error, SelectError::LocalNotCompiled));
    }

    #[cfg(feature = "local-llm")]
    #[test]
    fn local_with_a_missing_model_names_the_path_and_the_setup_command() {
        let config = AiConfig {
            model: Some("local".into()),
            local: LocalConfig {
                model_path: "no/such/dir/model.gguf".into(),
                ..LocalConfig::default()
            },
            ..AiConfig::default()
        };
        let message = select_provider(&config)
            .err()
            .expect("must fail")
            .to_string();
        assert!(message.contains("no/such/dir/model.gguf"), "{message}");
        assert!(message.contains("scripts/setup-models.sh"), "{message}");
    }

    #[test]
    fn key_alone_selects_openai() {
        let config = AiConfig {
            openai_api_key: Some("k".into()),
            ..AiConfig::default()
        };
        assert!(matches!(config.spec().unwrap(), ModelSpec::OpenAi { .. }));
    }
}
