//! A title for a new conversation from the model, after its first reply:
//! a short, capped prompt that runs once the reply is stored (never
//! delaying it), whose answer replaces the title taken from the first
//! message and reaches the owner's sockets as `conversation` `renamed`. A
//! title the user gave or changed is never replaced (see the store's
//! `title_source`).

use std::{sync::Arc, time::Duration};

use colloquy_ai::{ChatMessage, ChatRequest, Provider, Role};
use colloquy_protocol::ConversationAction;
use tokio::sync::Semaphore;

use super::oneshot;

use crate::{
    conversation,
    hub::ChannelHandle,
    store::{self, Pool},
};

/// How the model is asked.
const INSTRUCTION: &str = "You name chat conversations. Answer with a title of 3 to 6 words \
     saying what the conversation is about, and nothing else: no quotes, no final punctuation.";
/// How much of the question and of the reply the prompt quotes, in characters.
const QUOTED_CHARS: usize = 500;
/// Tokens the title may take.
const MAX_TITLE_TOKENS: u32 = 24;
/// Longest a title generation may take before it is given up.
const TIMEOUT: Duration = Duration::from_secs(30);
/// Longest title kept, in characters and in words.
const MAX_TITLE_CHARS: usize = 60;
const MAX_TITLE_WORDS: usize = 8;

/// What a title is made from.
pub(super) struct FirstExchange {
    pub(super) channel: ChannelHandle,
    pub(super) question: String,
    pub(super) reply: String,
}

/// Generate and store a title for the conversation of `exchange` if its
/// title still comes from its first message. Runs in its own task.
pub(super) fn spawn(
    db: Pool,
    provider: Arc<dyn Provider>,
    generations: Arc<Semaphore>,
    exchange: FirstExchange,
) {
    tokio::spawn(async move {
        let id = exchange.channel.id;
        match store::claim_title_generation(&db, id).await {
            Ok(true) => {}
            Ok(false) => return,
            Err(error) => {
                tracing::warn!(%error, "claiming the title generation failed");
                return;
            }
        }
        // A title is worth less than a reply: only with a free permit.
        let title = match generations.try_acquire_owned() {
            Ok(_permit) => generate(provider.as_ref(), &exchange).await,
            Err(_) => None,
        };
        match store::finish_title_generation(&db, id, title.as_deref()).await {
            Ok(true) => {
                if let Some(title) = &title {
                    exchange.channel.tell_owner(conversation::changed(
                        ConversationAction::Renamed,
                        id,
                        Some(title),
                    ));
                }
            }
            Ok(false) => {}
            Err(error) => tracing::warn!(%error, "storing the generated title failed"),
        }
    });
}

async fn generate(provider: &dyn Provider, exchange: &FirstExchange) -> Option<String> {
    let quote = |text: &str| text.chars().take(QUOTED_CHARS).collect::<String>();
    let request = ChatRequest {
        messages: vec![
            ChatMessage::new(Role::System, INSTRUCTION),
            ChatMessage::new(
                Role::User,
                format!(
                    "User: {}\nAssistant: {}",
                    quote(&exchange.question),
                    quote(&exchange.reply)
                ),
            ),
        ],
        max_tokens: Some(MAX_TITLE_TOKENS),
        temperature: Some(0.2),
        ..ChatRequest::default()
    };
    let answer = oneshot::answer(provider, request, TIMEOUT).await.ok();
    match answer.as_deref().and_then(clean) {
        Some(title) => Some(title),
        None => {
            tracing::info!("the model gave no usable title");
            None
        }
    }
}

/// The title in a model's answer: its first line, without quotes, markup
/// or final punctuation, at most [`MAX_TITLE_WORDS`] words and
/// [`MAX_TITLE_CHARS`] characters; `None` when nothing is left.
fn clean(answer: &str) -> Option<String> {
    let line = answer
        .lines()
        .map(str::trim)
        .find(|line| !line.is_empty())?;
    let line = line
        .strip_prefix("Title:")
        .or_else(|| line.strip_prefix("title:"))
        .unwrap_or(line);
    let unquoted: String = line
        .chars()
        .filter(|c| !matches!(c, '"' | '\'' | '“' | '”' | '‘' | '’' | '*' | '#' | '`'))
        .collect();
    let words: Vec<&str> = unquoted.split_whitespace().take(MAX_TITLE_WORDS).collect();
    let mut title: String = words.join(" ").chars().take(MAX_TITLE_CHARS).collect();
    while title.ends_with(['.', '!', '?', ':', ';', ',']) {
        title.pop();
    }
    let title = title.trim().to_owned();
    (!title.is_empty()).then_some(title)
}

#[cfg(test)]
mod tests {
    use super::clean;

    #[test]
    fn answers_are_cleaned_to_a_short_plain_title() {
        assert_eq!(
            clean("Paris Travel Tips").as_deref(),
            Some("Paris Travel Tips")
        );
        assert_eq!(
            clean("\n  \"Paris Travel Tips.\"\nmore").as_deref(),
            Some("Paris Travel Tips")
        );
        assert_eq!(
            clean("Title: **Baking Bread**").as_deref(),
            Some("Baking Bread")
        );
        let long = "one two three four five six seven eight nine ten";
        assert_eq!(clean(long).unwrap().split(' ').count(), 8);
        assert!(clean(&"x".repeat(200)).unwrap().chars().count() <= 60);
        assert_eq!(clean("  \n \"...\" "), None);
        assert_eq!(clean(""), None);
    }
}
