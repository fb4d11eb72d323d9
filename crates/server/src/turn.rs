//! One reply from start to finish, whatever the transport.
//!
//! [`TurnService::submit`] stores the user message (durably, before anything
//! is acknowledged) and publishes its `ack`; a background task then waits for
//! the conversation's previous reply, streams the provider's deltas as
//! `delta` events and ends with one final `message` event whose row is stored
//! in the same step: `complete`, `interrupted` (stop, shutdown) or `error`
//! (preceded by an `error` event). Every reply ends with that final message,
//! so clients and the HTTP adapters have one thing to wait for.

use std::{
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::Duration,
};

use colloquy_ai::{
    history::{estimate_tokens, trim_to_budget},
    ChatMessage, ChatRequest, Provider, ProviderError, Role, StreamEvent,
};
use colloquy_protocol::{MessageStatus, Sender, ServerEvent};
use futures::StreamExt;
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use tracing::Instrument;
use uuid::Uuid;

use crate::{
    hub::{ChannelHandle, Published},
    input::{ClientId, UserText},
    store::{self, MessageWriter, NewMessage, Pool, StoreError},
};

/// Largest `delta` event content, in characters: a provider chunk larger
/// than this is sent as several deltas, keeping frames small.
const MAX_DELTA_CHARS: usize = 2048;

/// `text` cut to at most `room` characters, and whether it was cut.
fn clip_chars(text: String, room: usize) -> (String, bool) {
    match text.char_indices().nth(room) {
        Some((cut, _)) => (text[..cut].to_owned(), true),
        None => (text, false),
    }
}

/// `text` in pieces of at most `size` characters, never splitting a character.
fn split_chars(text: &str, size: usize) -> impl Iterator<Item = &str> {
    let mut rest = text;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let cut = rest.char_indices().nth(size).map_or(rest.len(), |(i, _)| i);
        let (piece, tail) = rest.split_at(cut);
        rest = tail;
        Some(piece)
    })
}

/// Most messages read back as history for one reply (before token trimming).
const HISTORY_MESSAGES: u32 = 200;

/// Settings that shape every reply.
#[derive(Debug, Clone)]
pub struct TurnSettings {
    pub system_prompt: String,
    pub history_budget_tokens: usize,
    pub max_reply_tokens: u32,
    /// Generation stops once the reply reaches this many characters.
    pub max_reply_chars: usize,
}

/// Why a message was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    #[error("the server is shutting down")]
    ShuttingDown,
    #[error("the conversation no longer exists")]
    ConversationGone,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl SubmitError {
    /// Stable code for the client's `error` event.
    pub fn code(&self) -> &'static str {
        match self {
            SubmitError::ShuttingDown => "shutting_down",
            SubmitError::ConversationGone => "not_found",
            SubmitError::Store(_) => "storage_error",
        }
    }
}

/// Per-turn choices that differ from the server's defaults.
#[derive(Debug, Clone, Default)]
pub struct TurnOptions {
    /// Replaces the configured system prompt (the voice coach's session context).
    pub system_prompt: Option<String>,
}

/// An accepted user message.
#[derive(Debug, Clone)]
pub struct Submitted {
    /// The `ack` event (the original one when `duplicate`).
    pub ack: ServerEvent,
    pub message_id: Uuid,
    pub reply_id: Uuid,
    /// The `client_id` was seen before: nothing new was stored or started.
    pub duplicate: bool,
}

/// Runs every reply; one per server.
pub struct TurnService {
    db: Pool,
    writer: MessageWriter,
    provider: Option<Arc<dyn Provider>>,
    settings: TurnSettings,
    tasks: TaskTracker,
    /// Fired when the shutdown grace period ends: running replies stop and are stored as interrupted.
    stop_replies: CancellationToken,
    stopping: AtomicBool,
}

/// The user-facing text of an error code carried by a failed reply.
pub fn error_text(code: &str) -> &'static str {
    match code {
        "no_model" => "No AI model is configured on this server.",
        provider_code => ProviderError::public_message_for(provider_code),
    }
}

impl TurnService {
    /// A service generating with `provider` (`None`: replies fail with `no_model`).
    pub fn new(db: Pool, provider: Option<Arc<dyn Provider>>, settings: TurnSettings) -> Self {
        Self {
            writer: MessageWriter::spawn(db.clone()),
            db,
            provider,
            settings,
            tasks: TaskTracker::new(),
            stop_replies: CancellationToken::new(),
            stopping: AtomicBool::new(false),
        }
    }

    /// The configured provider, if any.
    pub fn provider(&self) -> Option<&Arc<dyn Provider>> {
        self.provider.as_ref()
    }

    /// Lets the provider process the system instruction of the turns to come
    /// (`None`: the default one) before the first of them, so its reply
    /// starts sooner. Best effort.
    pub fn prepare(&self, system_prompt: Option<&str>) {
        if let Some(provider) = &self.provider {
            let system = system_prompt.unwrap_or(&self.settings.system_prompt);
            provider.prepare(vec![ChatMessage::new(Role::System, system)]);
        }
    }

    /// Store a user message, publish its `ack` and start the reply.
    pub async fn submit(
        &self,
        channel: &ChannelHandle,
        text: UserText,
        client_id: Option<ClientId>,
    ) -> Result<Submitted, SubmitError> {
        self.submit_with(channel, text, client_id, TurnOptions::default())
            .await
    }

    /// [`TurnService::submit`] with per-turn options.
    #[tracing::instrument(skip_all, fields(conversation_id = %channel.id))]
    pub async fn submit_with(
        &self,
        channel: &ChannelHandle,
        text: UserText,
        client_id: Option<ClientId>,
        options: TurnOptions,
    ) -> Result<Submitted, SubmitError> {
        if self.stopping.load(Ordering::Acquire) {
            return Err(SubmitError::ShuttingDown);
        }
        if let Some(client_id) = &client_id {
            if let Some(existing) =
                store::find_by_client_id(&self.db, channel.id, client_id.as_str()).await?
            {
                return Ok(duplicate(existing));
            }
        }
        let message_id = Uuid::now_v7();
        let reply_id = Uuid::now_v7();
        let client_id_text = client_id.as_ref().map(|id| id.as_str().to_owned());
        let published = publish_user_message(
            &self.writer,
            channel,
            message_id,
            text.as_str(),
            client_id_text,
            reply_id,
        )
        .await;
        let ack = match published {
            Ok(published) => published.event.clone(),
            // Two sends with the same client_id raced; the other one won.
            Err(StoreError::Conflict(_)) => {
                let client_id = client_id.as_ref().map(ClientId::as_str).unwrap_or_default();
                return match store::find_by_client_id(&self.db, channel.id, client_id).await? {
                    Some(existing) => Ok(duplicate(existing)),
                    None => Err(SubmitError::Store(StoreError::Conflict(
                        "duplicate client_id",
                    ))),
                };
            }
            Err(StoreError::NotFound) => return Err(SubmitError::ConversationGone),
            Err(other) => return Err(other.into()),
        };
        let Some(after_seq) = ack.seq() else {
            return Err(SubmitError::Store(StoreError::Corrupt(
                "ack without seq".into(),
            )));
        };
        let cancel = self.stop_replies.child_token();
        channel.register_reply(reply_id, cancel.clone());
        let mut settings = self.settings.clone();
        if let Some(system_prompt) = options.system_prompt {
            settings.system_prompt = system_prompt;
        }
        let job = ReplyJob {
            db: self.db.clone(),
            writer: self.writer.clone(),
            provider: self.provider.clone(),
            settings,
            channel: channel.clone(),
            reply_id,
            after_seq,
            cancel,
        };
        let span = tracing::info_span!("reply", conversation_id = %channel.id, %reply_id);
        self.tasks.spawn(job.run().instrument(span));
        Ok(Submitted {
            ack,
            message_id,
            reply_id,
            duplicate: false,
        })
    }

    /// Cut a finished reply to what the listener heard before speaking over
    /// it, stored as `interrupted`, and publish the cut version as its final
    /// `message`. Returns false when the reply is not stored (or failed).
    pub async fn truncate_spoken_reply(
        &self,
        channel: &ChannelHandle,
        reply_id: Uuid,
        heard: &str,
    ) -> Result<bool, StoreError> {
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
    /// conversation like any other turn.
    pub async fn store_exchange(
        &self,
        channel: &ChannelHandle,
        user_text: Option<UserText>,
        reply: &str,
        status: MessageStatus,
    ) -> Result<Uuid, SubmitError> {
        if self.stopping.load(Ordering::Acquire) {
            return Err(SubmitError::ShuttingDown);
        }
        let reply_id = Uuid::now_v7();
        let gone = |error| match error {
            StoreError::NotFound => SubmitError::ConversationGone,
            other => SubmitError::Store(other),
        };
        if let Some(text) = user_text {
            let message_id = Uuid::now_v7();
            publish_user_message(
                &self.writer,
                channel,
                message_id,
                text.as_str(),
                None,
                reply_id,
            )
            .await
            .map_err(gone)?;
        }
        publish_reply(&self.writer, channel, reply_id, reply, status, None)
            .await
            .map_err(gone)?;
        Ok(reply_id)
    }

    /// Refuse new messages from now on (shutdown has begun).
    pub fn refuse_new(&self) {
        self.stopping.store(true, Ordering::Release);
    }

    /// Let in-flight replies finish for up to `grace`, then stop the rest
    /// (they are stored as interrupted) and wait for them.
    pub async fn drain(&self, grace: Duration) {
        self.refuse_new();
        self.tasks.close();
        if tokio::time::timeout(grace, self.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                in_flight = self.tasks.len(),
                "grace period over: interrupting replies"
            );
            self.stop_replies.cancel();
            self.tasks.wait().await;
        }
    }
}

/// Store a user message answered by `reply_id` under the conversation's
/// next seq and publish its `ack`.
async fn publish_user_message(
    writer: &MessageWriter,
    channel: &ChannelHandle,
    id: Uuid,
    content: &str,
    client_id: Option<String>,
    reply_id: Uuid,
) -> Result<Arc<Published>, StoreError> {
    channel
        .publish(|seq| async move {
            let stored = writer
                .insert(NewMessage {
                    id,
                    conversation_id: channel.id,
                    sender: Sender::User,
                    content: content.to_owned(),
                    status: MessageStatus::Complete,
                    seq,
                    client_id,
                    reply_id: Some(reply_id),
                    error_code: None,
                })
                .await?;
            Ok(ack_event(&stored))
        })
        .await
}

/// Store an assistant reply under the conversation's next seq and publish
/// it as the reply's final `message`.
async fn publish_reply(
    writer: &MessageWriter,
    channel: &ChannelHandle,
    reply_id: Uuid,
    content: &str,
    status: MessageStatus,
    error_code: Option<&str>,
) -> Result<Arc<Published>, StoreError> {
    channel
        .publish(|seq| async move {
            let message = writer
                .insert(NewMessage {
                    id: reply_id,
                    conversation_id: channel.id,
                    sender: Sender::Assistant,
                    content: content.to_owned(),
                    status,
                    seq,
                    client_id: None,
                    reply_id: None,
                    error_code: error_code.map(str::to_owned),
                })
                .await?;
            Ok(final_event(&message))
        })
        .await
}

fn ack_event(message: &store::Message) -> ServerEvent {
    ServerEvent::Ack {
        client_id: message.client_id.clone(),
        message_id: message.id,
        seq: message.seq,
        content: message.content.clone(),
        reply_id: message.reply_id.unwrap_or(message.id),
    }
}

fn duplicate(existing: store::Message) -> Submitted {
    Submitted {
        ack: ack_event(&existing),
        message_id: existing.id,
        reply_id: existing.reply_id.unwrap_or(existing.id),
        duplicate: true,
    }
}

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
struct ReplyJob {
    db: Pool,
    writer: MessageWriter,
    provider: Option<Arc<dyn Provider>>,
    settings: TurnSettings,
    channel: ChannelHandle,
    reply_id: Uuid,
    /// The seq of the user message being answered.
    after_seq: u64,
    cancel: CancellationToken,
}

impl ReplyJob {
    async fn run(self) {
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

/// Store an empty `interrupted` reply for every user message a crash left
/// unanswered, so no client waits forever for it. Returns how many.
pub async fn close_orphaned_replies(db: &Pool) -> Result<usize, StoreError> {
    let orphans = store::orphaned_user_messages(db).await?;
    for user_message in &orphans {
        let Some(reply_id) = user_message.reply_id else {
            continue;
        };
        let conversation_id = user_message.conversation_id;
        let Some(last_seq) = store::conversation_last_seq(db, conversation_id).await? else {
            continue;
        };
        let reply = NewMessage {
            id: reply_id,
            conversation_id,
            sender: Sender::Assistant,
            content: String::new(),
            status: MessageStatus::Interrupted,
            seq: last_seq + 1,
            client_id: None,
            reply_id: None,
            error_code: None,
        };
        store::insert_message(db, reply).await?;
    }
    Ok(orphans.len())
}

/// The events that stored messages after `after` were published as: the
/// `ack` of each user message; for each reply its `error` event (if it
/// failed) and its final `message`, which supersedes its deltas.
pub async fn stored_events(
    db: &Pool,
    conversation_id: Uuid,
    after: u64,
) -> Result<Vec<ServerEvent>, StoreError> {
    let messages = store::messages_after(db, conversation_id, after).await?;
    let mut events = Vec::with_capacity(messages.len());
    for message in &messages {
        match (message.sender, &message.error_code) {
            (Sender::User, _) => events.push(ack_event(message)),
            (_, Some(code)) if message.status == MessageStatus::Error => {
                events.push(ServerEvent::Error {
                    code: code.clone(),
                    message: error_text(code).into(),
                    message_id: Some(message.id),
                    seq: Some(message.seq.saturating_sub(1)),
                    client_id: None,
                });
                events.push(final_event(message));
            }
            _ => events.push(final_event(message)),
        }
    }
    Ok(events)
}

/// The final `message` event of a stored reply.
pub fn final_event(message: &store::Message) -> ServerEvent {
    ServerEvent::Message {
        message_id: message.id,
        seq: message.seq,
        content: message.content.clone(),
        sender: message.sender,
        status: message.status,
        is_final: true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clip_keeps_whole_characters() {
        assert_eq!(clip_chars("héllo".into(), 2), ("hé".into(), true));
        assert_eq!(clip_chars("hé".into(), 2), ("hé".into(), false));
        assert_eq!(clip_chars("x".into(), 0), (String::new(), true));
    }

    #[test]
    fn split_makes_bounded_pieces_that_rejoin() {
        let text = "ab€cd€e";
        let pieces: Vec<&str> = split_chars(text, 3).collect();
        assert_eq!(pieces, ["ab€", "cd€", "e"]);
        assert_eq!(split_chars("", 3).count(), 0);
    }
}
