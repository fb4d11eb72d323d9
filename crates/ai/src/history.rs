//! Fitting a conversation into a model's context budget.

use crate::provider::{ChatMessage, Role};

/// A rough token estimate (about four characters per token for English),
/// used where the real tokenizer is not at hand. Overestimates slightly on
/// purpose by counting per-message overhead.
pub fn estimate_tokens(message: &ChatMessage) -> usize {
    const PER_MESSAGE_OVERHEAD: usize = 4;
    message.content.chars().count().div_ceil(4) + PER_MESSAGE_OVERHEAD
}

/// Keep the system instruction(s) and the newest messages whose estimated
/// size, counted by `count`, fits `budget`. The newest message is always
/// kept, even alone over budget, so the model sees what it must answer.
pub fn trim_to_budget(
    messages: Vec<ChatMessage>,
    budget: usize,
    count: impl Fn(&ChatMessage) -> usize,
) -> Vec<ChatMessage> {
    let (system, rest): (Vec<_>, Vec<_>) =
        messages.into_iter().partition(|m| m.role == Role::System);
    let mut used: usize = system.iter().map(&count).sum();
    let mut kept_rev = Vec::new();
    for (index, message) in rest.into_iter().rev().enumerate() {
        let size = count(&message);
        if index > 0 && used + size > budget {
            break;
        }
        used += size;
        kept_rev.push(message);
    }
    system
        .into_iter()
        .chain(kept_rev.into_iter().rev())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(role: Role, text: &str) -> ChatMessage {
        ChatMessage::new(role, text)
    }

    #[test]
    fn keeps_system_and_newest_turns_within_budget() {
        let history = vec![
            msg(Role::System, "sys"),
            msg(Role::User, "one"),
            msg(Role::Assistant, "two"),
            msg(Role::User, "three"),
        ];
        let trimmed = trim_to_budget(history, 3, |_| 1);
        let texts: Vec<_> = trimmed.iter().map(|m| m.content.as_str()).collect();
        assert_eq!(texts, ["sys", "two", "three"]);
    }

    #[test]
    fn newest_message_survives_even_over_budget() {
        let history = vec![msg(Role::User, "old"), msg(Role::User, "huge")];
        let trimmed = trim_to_budget(history, 1, |_| 10);
        assert_eq!(trimmed.len(), 1);
        assert_eq!(trimmed[0].content, "huge");
    }

    #[test]
    fn estimate_grows_with_length() {
        let short = estimate_tokens(&msg(Role::User, "hi"));
        let long = estimate_tokens(&msg(Role::User, &"word ".repeat(100)));
        assert!(long > short + 100);
    }
}
