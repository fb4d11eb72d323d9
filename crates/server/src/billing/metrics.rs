//! Usage counters by model for `/metrics`: replies, tokens, voice seconds
//! and tool calls, counted when a reply's usage is stored. Model ids come
//! from the configuration, so the label set stays small.

use prometheus_client::{
    encoding::{text::encode_registry, EncodeLabelSet},
    metrics::{counter::Counter, family::Family},
    registry::Registry,
};

use crate::store::UsageDelta;

/// A model, as a label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ModelLabel {
    model: String,
}

/// A token kind and model, as labels.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TokenLabels {
    model: String,
    kind: &'static str,
}

/// A voice direction and model, as labels.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VoiceLabels {
    model: String,
    direction: &'static str,
}

/// The usage counters of the whole server.
pub struct UsageMetrics {
    registry: Registry,
    messages: Family<ModelLabel, Counter>,
    tokens: Family<TokenLabels, Counter>,
    voice_seconds: Family<VoiceLabels, Counter<f64>>,
    tool_calls: Family<ModelLabel, Counter>,
}

impl std::fmt::Debug for UsageMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UsageMetrics").finish_non_exhaustive()
    }
}

impl Default for UsageMetrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("colloquy_usage");
        let messages = Family::<ModelLabel, Counter>::default();
        let tokens = Family::<TokenLabels, Counter>::default();
        let voice_seconds = Family::<VoiceLabels, Counter<f64>>::default();
        let tool_calls = Family::<ModelLabel, Counter>::default();
        registry.register("replies", "Replies metered, by model", messages.clone());
        registry.register(
            "tokens",
            "Tokens metered, by model and kind (prompt, completion)",
            tokens.clone(),
        );
        registry.register(
            "voice_seconds",
            "Seconds of voice metered, by model and direction (in, out)",
            voice_seconds.clone(),
        );
        registry.register(
            "tool_calls",
            "Tool calls metered, by model",
            tool_calls.clone(),
        );
        Self {
            registry,
            messages,
            tokens,
            voice_seconds,
            tool_calls,
        }
    }
}

/// A stored count as a counter increment (counts are never negative).
fn positive(count: i64) -> u64 {
    u64::try_from(count).unwrap_or(0)
}

impl UsageMetrics {
    /// Count usage that was just stored.
    pub fn count(&self, delta: &UsageDelta) {
        let model = ModelLabel {
            model: delta.model.clone(),
        };
        self.messages
            .get_or_create(&model)
            .inc_by(positive(delta.messages));
        self.tool_calls
            .get_or_create(&model)
            .inc_by(positive(delta.tool_calls));
        for (kind, count) in [
            ("prompt", delta.prompt_tokens),
            ("completion", delta.completion_tokens),
        ] {
            let labels = TokenLabels {
                model: delta.model.clone(),
                kind,
            };
            self.tokens.get_or_create(&labels).inc_by(positive(count));
        }
        for (direction, ms) in [("in", delta.voice_ms_in), ("out", delta.voice_ms_out)] {
            let labels = VoiceLabels {
                model: delta.model.clone(),
                direction,
            };
            self.voice_seconds
                .get_or_create(&labels)
                .inc_by(positive(ms) as f64 / 1000.0);
        }
    }

    /// This registry's part of the text exposition (no `# EOF`).
    pub fn render_into(&self, out: &mut String) {
        if let Err(error) = encode_registry(out, &self.registry) {
            tracing::error!(%error, "encoding usage metrics failed");
        }
    }
}
