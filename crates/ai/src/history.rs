//! Fitting a conversation into a model's context budget.

use crate::provider::{ChatMessage, Role};

/// Tokens [`estimate_tokens`] adds for each message's framing.
const PER_MESSAGE_OVERHEAD: usize = 4;

/// A rough token estimate (about four characters per token for English),
/// used where the real tokenizer is not at hand. Overestimates slightly on
/// purpose by counting per-message overhead. Tool calls count their name
/// and argument text.
pub fn estimate_tokens(message: &ChatMessage) -> usize {
    let calls: usize = message
        .tool_calls
        .iter()
        .map(|call| call.name.len() + call.arguments.chars().count())
        .sum();
    (message.content.chars().count() + calls).div_ceil(4) + PER_MESSAGE_OVERHEAD
}

/// [`estimate_tokens`] of a text message of `chars` characters, and none
/// for no text: for a reply cut short, or a question, whose provider
/// reported no count and whose text alone is known.
pub fn estimate_text_tokens(chars: usize) -> usize {
    if chars == 0 {
        0
    } else {
        chars.div_ceil(4) + PER_MESSAGE_OVERHEAD
    }
}

/// Keep the system instruction(s), the current turn (from the newest user
/// message on, whatever its size, so the model sees what it must answer and
/// the tool rounds it already ran for it), and the newest earlier messages
/// whose estimated size, counted by `count`, fits `budget`. An assistant
/// turn that called tools is kept or dropped together with its tool
/// results: a result without its call is refused by providers.
pub fn trim_to_budget(
    messages: Vec<ChatMessage>,
    budget: usize,
    count: impl Fn(&ChatMessage) -> usize,
) -> Vec<ChatMessage> {
    let (system, mut rest): (Vec<_>, Vec<_>) =
        messages.into_iter().partition(|m| m.role == Role::System);
    let current_from = rest
        .iter()
        .rposition(|m| m.role == Role::User)
        .unwrap_or(rest.len().saturating_sub(1));
    let current = rest.split_off(current_from);
    let mut used: usize = system.iter().chain(&current).map(&count).sum();
    // Earlier messages in units: a message and the tool results after it.
    let mut units: Vec<Vec<ChatMessage>> = Vec::new();
    for message in rest {
        match units.last_mut() {
            Some(unit) if message.role == Role::Tool => unit.push(message),
            _ => units.push(vec![message]),
        }
    }
    let mut kept_rev = Vec::new();
    for unit in units.into_iter().rev() {
        let size: usize = unit.iter().map(&count).sum();
        if used + size > budget {
            break;
        }
        used += size;
        kept_rev.push(unit);
    }
    // A leading tool result lost its call to an earlier cut (the history
    // read from storage starts mid-turn): providers refuse it.
    let earlier = kept_rev
        .into_iter()
        .rev()
        .flatten()
        .skip_while(|m| m.role == Role::Tool);
    system.into_iter().chain(earlier).chain(current).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(role: Role, text: &str) -> ChatMessage {
        ChatMessage::new(role, text)
    }

    #[test]
    fn a_texts_estimate_is_its_messages_and_nothing_without_text() {
        let text = "hello world!";
        let message = estimate_tokens(&msg(Role::Assistant, text));
        assert_eq!(estimate_text_tokens(text.chars().count()), message);
        assert_eq!(estimate_text_tokens(0), 0);
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
    fn a_tool_round_is_kept_or_dropped_whole_and_the_current_turn_always_stays() {
        let call = crate::provider::ToolCall {
            id: "c1".into(),
            name: "calculate".into(),
            arguments: "{}".into(),
        };
        let history = vec![
            msg(Role::System, "sys"),
            msg(Role::User, "old question"),
            ChatMessage::tool_calls("", vec![call.clone()]),
            ChatMessage::tool_result("c1", "42"),
            msg(Role::Assistant, "old answer"),
            msg(Role::User, "new question"),
            ChatMessage::tool_calls("", vec![call]),
            ChatMessage::tool_result("c1", "7"),
        ];
        // Room for the system, the current turn (3) and one more message:
        // the old answer, but not the old round (2 messages).
        let trimmed = trim_to_budget(history.clone(), 5, |_| 1);
        let roles: Vec<_> = trimmed.iter().map(|m| m.role).collect();
        assert_eq!(
            roles,
            [
                Role::System,
                Role::Assistant,
                Role::User,
                Role::Assistant,
                Role::Tool
            ]
        );
        assert_eq!(trimmed[1].content, "old answer");
        // Over budget, the current turn is still whole.
        let tight = trim_to_budget(history.clone(), 0, |_| 1);
        assert_eq!(tight.len(), 4);
        assert_eq!(tight[1].content, "new question");
        // A history read from the middle of a round drops the orphan result.
        let mid_round = history[3..].to_vec();
        let trimmed = trim_to_budget(mid_round, 100, |_| 1);
        assert_eq!(trimmed[0].content, "old answer");
    }

    #[test]
    fn estimate_grows_with_length() {
        let short = estimate_tokens(&msg(Role::User, "hi"));
        let long = estimate_tokens(&msg(Role::User, &"word ".repeat(100)));
        assert!(long > short + 100);
    }
}
