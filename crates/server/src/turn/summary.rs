//! A conversation's summary from the model: a short, capped prompt (like a
//! title's) that quotes the stored messages not yet summarized, after the
//! summary so far, so a summary grows turn by turn instead of rereading
//! the whole conversation. A summary follows one branch: the path from the
//! first message to a leaf, so an abandoned alternative is never quoted.
//! Used on request (`POST .../summary`, along the active path) and by the
//! rolling summary of trimmed history ([`super::rolling`], along the path
//! being answered).

use std::time::Duration;

use colloquy_ai::{ChatMessage, ChatRequest, Provider, ProviderError, Role};
use colloquy_protocol::{MessageStatus, Sender};
use uuid::Uuid;

use super::oneshot;
use crate::store::{self, Message, NewSummary, Pool, StoreError, StoredSummary};

/// How the model is asked; the length cap is appended.
const INSTRUCTION: &str = "You summarize chat conversations between a user and an assistant. \
     Write a compact summary in plain prose: the user's goals, facts and names they gave, \
     what was answered or decided, and what is still open. No preamble, no lists of turns.";
/// Most messages of a path read per summary: a summary older than that
/// many messages is started over (the transcript cap binds long before).
const PATH_MESSAGES: u32 = 1_000;
/// How much of one message the prompt quotes, in characters.
const QUOTED_CHARS: usize = 1_000;
/// How much new transcript one summary reads, in characters: the rest is
/// summarized next time, from where this one stops.
const MAX_TRANSCRIPT_CHARS: usize = 12_000;
/// Longest a summary generation may take before it is given up.
const TIMEOUT: Duration = Duration::from_secs(60);

/// How long summaries may be.
#[derive(Debug, Clone, Copy)]
pub struct SummaryLimits {
    /// Longest summary kept, in characters.
    pub max_chars: usize,
    /// Tokens the model may generate for one.
    pub max_tokens: u32,
}

/// Why no summary was made.
#[derive(Debug, thiserror::Error)]
pub enum SummaryError {
    #[error("no AI model is configured on this server")]
    NoModel,
    #[error("the server is busy")]
    Overloaded,
    #[error("the conversation has no messages to summarize")]
    NothingToSummarize,
    #[error("the model gave no usable summary")]
    Empty,
    #[error(transparent)]
    Provider(#[from] ProviderError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Where a summary reaches: the path from the first message to `leaf`,
/// through the message `through` on it.
#[derive(Debug, Clone, Copy)]
pub(super) struct PathEnd {
    pub(super) leaf: Uuid,
    pub(super) through: Uuid,
}

/// Summarize `conversation_id` along the path to `end.leaf`, through
/// `end.through`, with `provider`, continuing the stored summary when it
/// covers an earlier part of that path (a summary of another branch is
/// started over, never continued), and store the result. A stored summary
/// that already covers `end.through` on that path is returned as it is,
/// without asking the model. The caller holds a generation permit.
pub(super) async fn summarize(
    db: &Pool,
    provider: &dyn Provider,
    conversation_id: Uuid,
    end: PathEnd,
    limits: SummaryLimits,
) -> Result<StoredSummary, SummaryError> {
    let previous = store::find_summary(db, conversation_id).await?;
    let path = store::path_before(db, conversation_id, end.leaf, PATH_MESSAGES).await?;
    let Some(through) = path.iter().position(|m| m.id == end.through) else {
        return Err(SummaryError::NothingToSummarize);
    };
    let covered = previous.as_ref().and_then(|previous| {
        path.iter()
            .position(|m| m.id == previous.through_message_id)
            .map(|at| (previous, at))
    });
    let (so_far, unsummarized) = match covered {
        Some((previous, at)) if at >= through => return Ok(previous.clone()),
        Some((previous, at)) => (Some(previous.summary.as_str()), &path[at + 1..=through]),
        None => (None, &path[..=through]),
    };
    let Some((transcript, last)) = transcript(unsummarized) else {
        return match covered {
            Some((previous, _)) => Ok(previous.clone()),
            None => Err(SummaryError::NothingToSummarize),
        };
    };
    let summary = generate(provider, so_far, &transcript, limits).await?;
    let new = NewSummary {
        summary: &summary,
        through_message_id: last.id,
        through_seq: last.seq,
    };
    let replacing = previous.as_ref().map(|p| p.through_message_id);
    store::save_summary(db, conversation_id, new, replacing).await?;
    // Read back: a concurrent writer may have stored another one first.
    store::find_summary(db, conversation_id)
        .await?
        .ok_or(SummaryError::Store(StoreError::NotFound))
}

/// The quoted transcript of the messages worth summarizing among
/// `messages` (a stretch of one path, oldest first), within
/// [`MAX_TRANSCRIPT_CHARS`], and the last message it quotes; `None` when
/// there is none.
fn transcript(messages: &[Message]) -> Option<(String, &Message)> {
    let mut text = String::new();
    let mut last = None;
    let worth = messages
        .iter()
        .filter(|m| m.status != MessageStatus::Error && !m.content.trim().is_empty());
    for message in worth {
        let speaker = match message.sender {
            Sender::User => "User",
            Sender::Assistant => "Assistant",
            Sender::Tool => continue,
        };
        let quoted: String = message.content.chars().take(QUOTED_CHARS).collect();
        let line = format!("{speaker}: {quoted}\n");
        // The first message always fits, so a summary always moves forward.
        if last.is_some() && text.len() + line.len() > MAX_TRANSCRIPT_CHARS {
            break;
        }
        text.push_str(&line);
        last = Some(message);
    }
    last.map(|last| (text, last))
}

async fn generate(
    provider: &dyn Provider,
    so_far: Option<&str>,
    transcript: &str,
    limits: SummaryLimits,
) -> Result<String, SummaryError> {
    let instruction = format!(
        "{INSTRUCTION} Keep it under {} characters.",
        limits.max_chars
    );
    let body = match so_far {
        Some(so_far) => format!(
            "Summary so far:\n{so_far}\n\nLater messages:\n{transcript}\n\
             Write the updated summary of the whole conversation."
        ),
        None => format!("Conversation:\n{transcript}"),
    };
    let request = ChatRequest {
        messages: vec![
            ChatMessage::new(Role::System, instruction),
            ChatMessage::new(Role::User, body),
        ],
        max_tokens: Some(limits.max_tokens),
        temperature: Some(0.2),
        ..ChatRequest::default()
    };
    let answer = oneshot::answer(provider, request, TIMEOUT).await?;
    clean(&answer, limits.max_chars).ok_or(SummaryError::Empty)
}

/// The summary in a model's answer: trimmed, at most `max_chars`
/// characters, cut after the last full sentence that fits when it is too
/// long; `None` when nothing is left.
fn clean(answer: &str, max_chars: usize) -> Option<String> {
    let text = answer.trim();
    if text.is_empty() {
        return None;
    }
    if text.chars().count() <= max_chars {
        return Some(text.to_owned());
    }
    let cut: String = text.chars().take(max_chars).collect();
    let sentence_end = cut.rfind(['.', '!', '?']).map(|at| at + 1);
    let kept = match sentence_end {
        // Keep the cut at a sentence unless that loses most of the text.
        Some(end) if end >= cut.len() / 2 => &cut[..end],
        _ => cut.as_str(),
    };
    Some(kept.trim_end().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(seq: u64, sender: Sender, content: &str, status: MessageStatus) -> Message {
        Message {
            id: Uuid::from_u128(u128::from(seq)),
            conversation_id: Uuid::nil(),
            sender,
            content: content.into(),
            status,
            seq,
            client_id: None,
            reply_id: None,
            error_code: None,
            parent_id: None,
            created_at: chrono::Utc::now(),
        }
    }

    #[test]
    fn the_transcript_quotes_what_the_model_saw_up_to_the_cut() {
        let messages = [
            message(1, Sender::User, "Plan a trip", MessageStatus::Complete),
            message(2, Sender::Assistant, "", MessageStatus::Interrupted),
            message(3, Sender::Assistant, "oops", MessageStatus::Error),
            message(4, Sender::Assistant, "Where to?", MessageStatus::Complete),
            message(5, Sender::User, "Lisbon", MessageStatus::Complete),
        ];
        let (text, last) = transcript(&messages[..4]).unwrap();
        assert_eq!(text, "User: Plan a trip\nAssistant: Where to?\n");
        assert_eq!(last.seq, 4);
        assert!(transcript(&messages[1..3]).is_none());
    }

    #[test]
    fn a_long_transcript_stops_at_its_cap_and_a_summary_at_a_sentence() {
        let long = "x".repeat(QUOTED_CHARS * 2);
        let messages: Vec<Message> = (1..=40)
            .map(|seq| message(seq, Sender::User, &long, MessageStatus::Complete))
            .collect();
        let (text, last) = transcript(&messages).unwrap();
        assert!(text.len() <= MAX_TRANSCRIPT_CHARS, "{}", text.len());
        assert!(last.seq < 40);

        assert_eq!(clean("  Short.  ", 100).as_deref(), Some("Short."));
        assert_eq!(clean(" \n ", 100), None);
        let answer = format!("First sentence here. Second one {}", "y".repeat(50));
        assert_eq!(clean(&answer, 30).as_deref(), Some("First sentence here."));
        assert_eq!(clean(&"z".repeat(500), 120).unwrap().chars().count(), 120);
    }
}
