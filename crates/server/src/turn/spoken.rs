//! Turns that other systems had or that were heard: an exchange a
//! speech-to-speech model (Gemini Live) already had, stored with what it
//! cost; the user's words stored before that model's tool calls; and a
//! spoken reply cut to what the listener heard before speaking over it.

use std::sync::atomic::Ordering;

use colloquy_protocol::MessageStatus;
use uuid::Uuid;

use super::{
    final_event, gone,
    publish::{publish_reply, publish_user_message, FinishedReply, UserMessage},
    SubmitError, TurnService,
};
use crate::{
    hub::ChannelHandle,
    input::UserText,
    store::{self, Parent, StoreError},
};

/// A turn another system already had (a speech-to-speech model), to be
/// stored by [`TurnService::store_exchange`].
pub struct SpokenExchange<'a> {
    /// The user's words, unless none were transcribed or they were stored
    /// already (`words_stored_as`).
    pub user_text: Option<UserText>,
    pub reply: &'a str,
    pub status: MessageStatus,
    /// The reply's id when it was chosen earlier (its tool calls already
    /// refer to it).
    pub reply_id: Option<Uuid>,
    /// The user message stored before the reply's tool calls ran.
    pub words_stored_as: Option<Uuid>,
    pub cost: ExchangeUsage,
}

/// What an exchange another system already had (a speech-to-speech
/// model) cost, metered with its reply.
#[derive(Debug, Clone, Default)]
pub struct ExchangeUsage {
    /// The model that had it, as a usage label.
    pub model: String,
    pub tokens: colloquy_ai::Usage,
    pub voice_ms_in: u64,
    pub voice_ms_out: u64,
    pub tool_calls: u32,
}

impl TurnService {
    /// Cut a finished reply to what the listener heard before speaking over
    /// it, stored as `interrupted`, and publish the cut version as its final
    /// `message`. Returns false when the reply is not stored (or failed).
    pub async fn truncate_spoken_reply(
        &self,
        channel: &ChannelHandle,
        reply_id: Uuid,
        heard: &str,
    ) -> Result<bool, StoreError> {
        let _lease = self.hold(channel).await.map_err(|error| match error {
            SubmitError::Store(error) => error,
            _ => StoreError::Unavailable,
        })?;
        let db = &self.db;
        let conversation_id = channel.id;
        let published = channel
            .publish(|seq| async move {
                match store::truncate_reply(db, conversation_id, reply_id, heard, seq).await? {
                    Some(message) => Ok(final_event(&message)),
                    // A failed publish consumes no seq.
                    None => Err(StoreError::NotFound),
                }
            })
            .await;
        match published {
            Ok(_) => Ok(true),
            Err(StoreError::NotFound) => Ok(false),
            Err(error) => Err(error),
        }
    }

    /// Store a turn another system already had (a speech-to-speech model
    /// such as Gemini Live): the user's words, if any were transcribed, then
    /// the assistant's reply as its final `message`, both published to the
    /// conversation like any other turn, with what it cost.
    pub async fn store_exchange(
        &self,
        channel: &ChannelHandle,
        exchange: SpokenExchange<'_>,
    ) -> Result<Uuid, SubmitError> {
        if self.stopping.load(Ordering::Acquire) {
            return Err(SubmitError::ShuttingDown);
        }
        // The exchange already happened: it is stored whatever the budget
        // says, but it counts against the owner's messages.
        if exchange.user_text.is_some() && !self.limits.allow_user_message(channel.owner) {
            tracing::info!("a voice exchange went past its owner's message budget");
        }
        let _lease = self.hold(channel).await?;
        let reply_id = exchange.reply_id.unwrap_or_else(Uuid::now_v7);
        let question_id = match exchange.user_text {
            Some(text) => Some(self.publish_spoken_words(channel, text, reply_id).await?),
            None => exchange.words_stored_as,
        };
        let cost = exchange.cost;
        let ms = |ms: u64| i64::try_from(ms).unwrap_or(i64::MAX);
        let usage = store::UsageDelta {
            prompt_tokens: i64::from(cost.tokens.prompt_tokens),
            completion_tokens: i64::from(cost.tokens.completion_tokens),
            voice_ms_in: ms(cost.voice_ms_in),
            voice_ms_out: ms(cost.voice_ms_out),
            tool_calls: i64::from(cost.tool_calls),
            ..self.billing.reply_usage(channel.owner, &cost.model)
        };
        let reply = FinishedReply {
            reply_id,
            content: exchange.reply,
            status: exchange.status,
            error_code: None,
            question_id,
            usage: Some(usage.clone()),
        };
        publish_reply(self.storage(), channel, &reply)
            .await
            .map_err(gone)?;
        self.billing.metrics.count(&usage);
        Ok(reply_id)
    }

    /// Store what the user said in a turn another system has (a
    /// speech-to-speech model), before its reply `reply_id` is stored: its
    /// tool calls are stored in the conversation this creates if needed.
    pub async fn store_spoken_words(
        &self,
        channel: &ChannelHandle,
        text: UserText,
        reply_id: Uuid,
    ) -> Result<Uuid, SubmitError> {
        if self.stopping.load(Ordering::Acquire) {
            return Err(SubmitError::ShuttingDown);
        }
        if !self.limits.allow_user_message(channel.owner) {
            tracing::info!("a voice exchange went past its owner's message budget");
        }
        let _lease = self.hold(channel).await?;
        self.publish_spoken_words(channel, text, reply_id).await
    }

    async fn publish_spoken_words(
        &self,
        channel: &ChannelHandle,
        text: UserText,
        reply_id: Uuid,
    ) -> Result<Uuid, SubmitError> {
        let user_message = UserMessage {
            id: Uuid::now_v7(),
            content: text.as_str(),
            client_id: None,
            reply_id,
            parent: Parent::ActiveLeaf,
        };
        let id = user_message.id;
        publish_user_message(self.storage(), channel, user_message)
            .await
            .map_err(gone)?;
        self.streaks.record_activity(channel.owner).await;
        Ok(id)
    }
}
