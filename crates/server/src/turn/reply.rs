//! One reply task: wait for the conversation's turn, stream the provider's
//! deltas, then store and publish the final message (`complete`,
//! `interrupted` or `error`).

use std::sync::Arc;

use colloquy_ai::{
    history::{estimate_tokens, trim_to_budget},
    ChatMessage, ChatRequest, Provider, ProviderError, Role, StreamEvent,
};
use colloquy_protocol::{MessageStatus, Sender, ServerEvent};
use futures::StreamExt;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::{
    error_text,
    publish::publish_reply,
    text::{clip_chars, split_chars, MAX_DELTA_CHARS},
    TurnSettings,
};
use crate::{
    hub::ChannelHandle,
    store::{self, MessageWriter, Pool, StoreError},
};

/// Most messages read back as history for one reply (before token trimming).
const HISTORY_MESSAGES: u32 = 200;

/// Why a reply did not complete.
enum Failure {
    NoModel,
    Provider(ProviderError),
}

impl Failure {
    fn code(&self) -> &'static str {
        match self {
            Failure::NoModel => "no_model",
            Failure::Provider(error) => error.code(),
        }
    }
}

/// Everything one reply task needs.
pub(super) struct ReplyJob {
    pub(super) db: Pool,
    pub(super) writer: MessageWriter,
    pub(super) provider: Option<Arc<dyn Provider>>,
    pub(super) settings: TurnSettings,
    pub(super) channel: ChannelHandle,
    pub(super) reply_id: Uuid,
    /// The seq of the user message being answered.
    pub(super) after_seq: u64,
    pub(super) cancel: CancellationToken,
}

impl ReplyJob {
    pub(super) async fn run(self) {
        let outcome = {
            // Held until generation ends: replies of a conversation run one at a time.
            let turn_guard = tokio::select! {
                guard = self.channel.turn_lock() => Some(guard),
                () = self.cancel.cancelled() => None,
            };
            match turn_guard {
                Some(_) => self.generate().await,
                None => (String::new(), Ok(MessageStatus::Interrupted)),
            }
        };
        let (content, result) = outcome;
        let status = match result {
            Ok(status) => status,
            Err(failure) => {
                let code = failure.code();
                if let Failure::Provider(error) = &failure {
                    tracing::warn!(%error, "reply failed");
                }
                self.publish_error(code).await;
                self.store_final(&content, MessageStatus::Error, Some(code))
                    .await;
                self.channel.finish_reply(self.reply_id);
                return;
            }
        };
        // A reply the listener spoke over keeps only what they heard.
        let content = match (status, self.channel.take_cut(self.reply_id)) {
            (MessageStatus::Interrupted, Some(heard)) => heard,
            _ => content,
        };
        self.store_final(&content, status, None).await;
        self.channel.finish_reply(self.reply_id);
    }

    /// Stream the reply; returns the text produced and how it ended.
    async fn generate(&self) -> (String, Result<MessageStatus, Failure>) {
        let mut content = String::new();
        let Some(provider) = &self.provider else {
            return (content, Err(Failure::NoModel));
        };
        let request = match self.request().await {
            Ok(request) => request,
            Err(error) => {
                tracing::error!(%error, "loading history failed");
                return (
                    content,
                    Err(Failure::Provider(ProviderError::Model(
                        "history unavailable".into(),
                    ))),
                );
            }
        };
        let mut stream = tokio::select! {
            started = provider.stream_chat(request) => match started {
                Ok(stream) => stream,
                Err(error) => return (content, Err(Failure::Provider(error))),
            },
            () = self.cancel.cancelled() => return (content, Ok(MessageStatus::Interrupted)),
        };
        let mut reply_chars = 0;
        loop {
            let item = tokio::select! {
                biased;
                () = self.cancel.cancelled() => return (content, Ok(MessageStatus::Interrupted)),
                item = stream.next() => item,
            };
            match item {
                Some(Ok(StreamEvent::Delta(text))) => {
                    let room = self.settings.max_reply_chars.saturating_sub(reply_chars);
                    let (text, clipped) = clip_chars(text, room);
                    for piece in split_chars(&text, MAX_DELTA_CHARS) {
                        content.push_str(piece);
                        self.publish_delta(piece.to_owned()).await;
                    }
                    reply_chars += text.chars().count();
                    if clipped {
                        tracing::info!(
                            max = self.settings.max_reply_chars,
                            "reply reached max_reply_chars"
                        );
                        return (content, Ok(MessageStatus::Complete));
                    }
                }
                Some(Ok(StreamEvent::Finished(_))) => {
                    return (content, Ok(MessageStatus::Complete))
                }
                Some(Err(error)) => return (content, Err(Failure::Provider(error))),
                None => {
                    let error = ProviderError::Protocol("stream ended without a finish".into());
                    return (content, Err(Failure::Provider(error)));
                }
            }
        }
    }

    async fn publish_delta(&self, content: String) {
        let message_id = self.reply_id;
        let published = self
            .channel
            .publish(|seq| async move {
                Ok::<_, std::convert::Infallible>(ServerEvent::Delta {
                    message_id,
                    seq,
                    content,
                })
            })
            .await;
        if let Err(never) = published {
            match never {}
        }
    }

    /// The system instruction and the history up to the user message, trimmed to budget.
    async fn request(&self) -> Result<ChatRequest, StoreError> {
        let stored =
            store::history(&self.db, self.channel.id, self.after_seq, HISTORY_MESSAGES).await?;
        let mut messages = vec![ChatMessage::new(
            Role::System,
            self.settings.system_prompt.clone(),
        )];
        messages.extend(stored.into_iter().filter_map(|message| {
            let role = match message.sender {
                Sender::User => Role::User,
                Sender::Assistant => Role::Assistant,
                Sender::Tool => return None,
            };
            Some(ChatMessage::new(role, message.content))
        }));
        Ok(ChatRequest {
            messages: trim_to_budget(
                messages,
                self.settings.history_budget_tokens,
                estimate_tokens,
            ),
            max_tokens: Some(self.settings.max_reply_tokens),
            temperature: None,
        })
    }

    async fn publish_error(&self, code: &'static str) {
        let message_id = self.reply_id;
        let db = &self.db;
        let conversation_id = self.channel.id;
        let published = self
            .channel
            .publish(|seq| async move {
                store::advance_last_seq(db, conversation_id, seq).await?;
                Ok::<_, StoreError>(ServerEvent::Error {
                    code: code.into(),
                    message: error_text(code).into(),
                    message_id: Some(message_id),
                    seq: Some(seq),
                    client_id: None,
                })
            })
            .await;
        if let Err(error) = published {
            tracing::error!(%error, "could not record a reply error");
        }
    }

    /// Store the reply and publish it as the final `message` event.
    async fn store_final(&self, content: &str, status: MessageStatus, error_code: Option<&str>) {
        let stored = publish_reply(
            &self.writer,
            &self.channel,
            self.reply_id,
            content,
            status,
            error_code,
        )
        .await;
        match stored {
            Ok(_) => tracing::debug!(status = status.as_str(), "reply stored"),
            Err(StoreError::NotFound) => tracing::info!("conversation deleted during the reply"),
            Err(error) => tracing::error!(%error, "storing the reply failed"),
        }
    }
}
