//! Metering `/v1/chat/completions`: a completion is no stored reply, so it
//! is metered when it ends, with the tokens its provider reported, or when
//! it ends without a count (a failure, or a client that went away mid-way,
//! which drops the stream) with tokens estimated from the prompt and the
//! text generated so far, as a cut reply is. Every completion the model
//! began is counted exactly once.

use colloquy_ai::{
    history::{estimate_text_tokens, estimate_tokens},
    ChatMessage, Usage,
};
use uuid::Uuid;

use crate::billing::Billing;

/// Meters one completion, once.
pub(super) struct CompletionMeter {
    billing: Billing,
    user_id: Uuid,
    model: String,
    prompt_tokens: u32,
    /// Characters generated so far.
    generated_chars: usize,
    metered: bool,
}

impl CompletionMeter {
    /// The meter of a completion of `messages` by `model` for `user_id`.
    pub(super) fn new(
        billing: Billing,
        user_id: Uuid,
        model: String,
        messages: &[ChatMessage],
    ) -> Self {
        let prompt: usize = messages.iter().map(estimate_tokens).sum();
        Self {
            billing,
            user_id,
            model,
            prompt_tokens: u32::try_from(prompt).unwrap_or(u32::MAX),
            generated_chars: 0,
            metered: false,
        }
    }

    /// Count `text` as generated.
    pub(super) fn generated(&mut self, text: &str) {
        self.generated_chars = self.generated_chars.saturating_add(text.chars().count());
    }

    /// Meter the completion with `tokens`, as its provider reported them
    /// (`None`: estimated).
    pub(super) async fn done(mut self, tokens: Option<Usage>) {
        self.metered = true;
        let tokens = tokens.unwrap_or_else(|| self.estimate());
        self.billing
            .record_completion(self.user_id, &self.model, tokens)
            .await;
    }

    /// The tokens spent so far, estimated.
    fn estimate(&self) -> Usage {
        estimate(self.prompt_tokens, self.generated_chars)
    }
}

/// A completion's tokens when its provider reported none: the prompt's
/// estimate and that of the `generated_chars` it wrote.
fn estimate(prompt_tokens: u32, generated_chars: usize) -> Usage {
    let completion = estimate_text_tokens(generated_chars);
    Usage {
        prompt_tokens,
        completion_tokens: u32::try_from(completion).unwrap_or(u32::MAX),
        cached_prompt_tokens: 0,
    }
}

impl Drop for CompletionMeter {
    /// A completion dropped before it ended (its client went away) is
    /// metered with what it spent so far, off the dropping task.
    fn drop(&mut self) {
        if self.metered {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::warn!("a dropped completion could not be metered: no runtime");
            return;
        };
        let tokens = self.estimate();
        let (billing, user_id, model) = (
            self.billing.clone(),
            self.user_id,
            std::mem::take(&mut self.model),
        );
        runtime.spawn(async move {
            billing.record_completion(user_id, &model, tokens).await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_estimate_counts_what_was_generated_like_a_message() {
        assert_eq!(estimate(14, 0).completion_tokens, 0);
        assert_eq!(estimate(14, 0).prompt_tokens, 14);
        let text = "hello world!";
        let as_message = estimate_tokens(&ChatMessage::new(colloquy_ai::Role::Assistant, text));
        assert_eq!(
            estimate(0, text.len()).completion_tokens as usize,
            as_message
        );
    }
}
