//! One reply task: wait for the conversation's turn, run the agent loop
//! (stream the provider's deltas; when the model calls tools, run them
//! ([`super::tools`]) and ask again with their results, for at most
//! `max_tool_rounds` rounds), then store and publish the final message
//! (`complete`, `interrupted` or `error`). Each prompt is the history fitted
//! to the token budget, trimmed turns replaced by the rolling summary
//! ([`super::rolling`]), which is refreshed after the reply when needed.

use std::sync::Arc;

use colloquy_ai::{
    ChatMessage, ChatRequest, Completion, Provider, ProviderError, ReplyStream, StreamEvent,
    ToolChoice, Usage,
};
use colloquy_protocol::{MessageStatus, ServerEvent};
use futures::StreamExt;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::{
    checkpoint::{self, Checkpoints, SEQ_RESERVATION},
    clock::TurnClock,
    completed::{self, Completed},
    error_text, history,
    metrics::TurnMetrics,
    publish::{publish_reply, publish_unstored_end, FinishedReply, Storage},
    replies::Replies,
    rolling::{self, Prompt, Rolling},
    summary::PathEnd,
    text::{clip_chars, split_chars, MAX_DELTA_CHARS},
    title::{self, FirstExchange},
    tools::ToolRound,
    TurnSettings,
};
use crate::{
    billing::Billing,
    hub::ChannelHandle,
    store::{self, MessageWriter, Pool, StoreError},
    time::sleep_until_some,
    tools::ToolRegistry,
};

/// Why a reply did not complete.
enum Failure {
    NoModel,
    Provider(ProviderError),
    /// The model still called tools when told to answer.
    ToolRoundsExceeded,
}

impl Failure {
    fn code(&self) -> &'static str {
        match self {
            Failure::NoModel => "no_model",
            Failure::Provider(error) => error.code(),
            Failure::ToolRoundsExceeded => "tool_rounds_exceeded",
        }
    }
}

/// What the agent loop produced: the reply's text (every round's deltas),
/// and the provider usage and tool calls of all its rounds.
#[derive(Default)]
struct Generated {
    content: String,
    /// Characters in `content` (counted as it grows, not recounted).
    chars: usize,
    usage: Usage,
    tool_calls: usize,
    /// Where a new rolling summary should reach, if the stored one falls short.
    refresh_summary_through: Option<PathEnd>,
}

/// How one model response of the loop ended.
enum RoundEnd {
    /// The response finished (maybe calling tools).
    Finished(Completion),
    /// The reply reached `max_reply_chars`.
    Full,
    Cancelled,
    Failed(ProviderError),
}

/// Everything one reply task needs.
pub(super) struct ReplyJob {
    pub(super) db: Pool,
    pub(super) writer: MessageWriter,
    pub(super) provider: Option<Arc<dyn Provider>>,
    pub(super) settings: TurnSettings,
    pub(super) channel: ChannelHandle,
    /// Where this reply is registered (for `stop` and barge-in cuts).
    pub(super) replies: Arc<Replies>,
    /// Server-wide permits for generating; none free fails the reply with `overloaded`.
    pub(super) generations: Arc<Semaphore>,
    pub(super) reply_id: Uuid,
    /// The user message being answered: the prompt is the path up to it.
    pub(super) question_id: Uuid,
    pub(super) cancel: CancellationToken,
    /// When the turn's stages happened (for `turn_completed`).
    pub(super) clock: TurnClock,
    /// Where every turn's latency is counted.
    pub(super) metrics: Arc<TurnMetrics>,
    /// The user message answered (a new conversation's title is made from it).
    pub(super) question: String,
    /// The tools the model may call.
    pub(super) tools: Arc<ToolRegistry>,
    /// Rolling summaries of trimmed history (`None`: disabled).
    pub(super) rolling: Option<Rolling>,
    /// Meters the reply: its usage is stored with it.
    pub(super) billing: Billing,
    /// The id of the model answering (as `GET /api/models` lists it).
    pub(super) model_id: String,
    /// Milliseconds of the user's speech this reply answers (0 for text).
    pub(super) voice_ms_in: i64,
    /// Cluster mode: this node's hold on the conversation, until the reply is stored.
    pub(super) _lease: Option<crate::cluster::LeaseGuard>,
}

/// A round's usage when the provider reported none (the round was cut
/// short, or the provider does not report usage): estimated from the
/// prompt sent and the text generated.
fn estimated_usage(prompt_tokens: usize, generated: &str) -> Usage {
    let tokens = |count: usize| u32::try_from(count).unwrap_or(u32::MAX);
    Usage {
        prompt_tokens: tokens(prompt_tokens),
        completion_tokens: tokens(colloquy_ai::history::estimate_text_tokens(
            generated.chars().count(),
        )),
        cached_prompt_tokens: 0,
    }
}

impl ReplyJob {
    pub(super) async fn run(self) {
        let outcome = {
            // Held until generation ends: replies of a conversation run one at a time.
            let turn_guard = tokio::select! {
                guard = self.channel.turn_lock() => Some(guard),
                () = self.cancel.cancelled() => None,
            };
            let mut generated = Generated::default();
            let result = match turn_guard {
                Some(_) => self.generate(&mut generated).await,
                None => Ok(MessageStatus::Interrupted),
            };
            (generated, result)
        };
        let (generated, result) = outcome;
        let Generated {
            content,
            usage,
            tool_calls,
            refresh_summary_through,
            ..
        } = generated;
        let (content, status, error_code) = match result {
            Ok(status) => {
                // A reply the listener spoke over keeps only what they heard.
                let heard = self.replies.take_heard(self.channel.id, self.reply_id);
                let content = match (status, heard) {
                    (MessageStatus::Interrupted, Some(heard)) => heard,
                    _ => content,
                };
                (content, status, None)
            }
            Err(failure) => {
                let code = failure.code();
                if let Failure::Provider(error) = &failure {
                    tracing::warn!(%error, "reply failed");
                }
                self.publish_error(code).await;
                (content, MessageStatus::Error, Some(code))
            }
        };
        let mut metered = self.billing.reply_usage(self.channel.owner, &self.model_id);
        metered.prompt_tokens = i64::from(usage.prompt_tokens);
        metered.completion_tokens = i64::from(usage.completion_tokens);
        metered.tool_calls = i64::try_from(tool_calls).unwrap_or(i64::MAX);
        metered.voice_ms_in = self.voice_ms_in;
        self.store_final(&content, status, error_code, metered)
            .await;
        self.replies.finish(self.channel.id, self.reply_id);
        let done = Completed {
            user_id: self.channel.owner,
            conversation_id: self.channel.id,
            reply_id: self.reply_id,
            status,
            error_code,
            reply_chars: content.chars().count(),
            usage,
            tool_calls,
        };
        completed::record(&self.db, &self.metrics, &self.clock, done).await;
        // A failed reply says the model is failing: no summary asked of it.
        let refresh = refresh_summary_through.filter(|_| status != MessageStatus::Error);
        if let (Some(rolling), Some(provider), Some(through)) =
            (&self.rolling, &self.provider, refresh)
        {
            rolling::refresh(
                rolling,
                self.db.clone(),
                provider.clone(),
                self.generations.clone(),
                (self.channel.id, through),
            );
        }
        if status == MessageStatus::Complete && self.settings.auto_titles {
            if let Some(provider) = &self.provider {
                let exchange = FirstExchange {
                    channel: self.channel.clone(),
                    question: self.question.clone(),
                    reply: content,
                };
                title::spawn(
                    self.db.clone(),
                    provider.clone(),
                    self.generations.clone(),
                    exchange,
                );
            }
        }
    }

    /// Run the agent loop into `generated`; returns how the reply ended.
    async fn generate(&self, generated: &mut Generated) -> Result<MessageStatus, Failure> {
        let Some(provider) = &self.provider else {
            return Err(Failure::NoModel);
        };
        let Ok(_generating) = self.generations.clone().try_acquire_owned() else {
            tracing::warn!("max_concurrent_generations reached: reply refused");
            return Err(Failure::Provider(ProviderError::Overloaded));
        };
        let history = history::load(
            &self.db,
            self.channel.id,
            self.question_id,
            &self.settings.system_prompt,
        )
        .await
        .map_err(|error| {
            tracing::error!(%error, "loading history failed");
            Failure::Provider(ProviderError::Model("history unavailable".into()))
        })?;
        let mut messages = history.messages;
        let mut prompt = Prompt {
            db: &self.db,
            conversation_id: self.channel.id,
            question: self.question_id,
            path: history.path,
            anchors: history.anchors,
            budget: self.settings.history_budget_tokens,
            summaries: self.rolling.is_some(),
            summary: None,
            trimmed_through: None,
        };
        let tools = self.tools.definitions();
        let mut checkpoints = Checkpoints::new(self.settings.checkpoint_interval);
        let mut round = 0;
        loop {
            // Once the rounds are spent the model must answer with what it has.
            let tool_choice = if round < self.settings.max_tool_rounds {
                ToolChoice::Auto
            } else {
                ToolChoice::None
            };
            let fitted = prompt.fit(&messages).await;
            generated.refresh_summary_through = prompt.refresh_through();
            let prompt_estimate: usize = fitted
                .iter()
                .map(colloquy_ai::history::estimate_tokens)
                .sum();
            let request = ChatRequest {
                messages: fitted,
                max_tokens: Some(self.settings.max_reply_tokens),
                temperature: None,
                tools: tools.clone(),
                tool_choice,
            };
            let round_start = generated.content.len();
            let stream = tokio::select! {
                started = provider.stream_chat(request) => started.map_err(Failure::Provider)?,
                () = self.cancel.cancelled() => return Ok(MessageStatus::Interrupted),
            };
            let end = self.stream_round(stream, generated, &mut checkpoints).await;
            // A round the provider did not report (cut short) still cost
            // what it was sent and what it generated.
            let reported = match &end {
                RoundEnd::Finished(completion) => completion.usage,
                _ => None,
            };
            generated.usage += reported.unwrap_or_else(|| {
                estimated_usage(prompt_estimate, &generated.content[round_start..])
            });
            let completion = match end {
                RoundEnd::Finished(completion) => completion,
                RoundEnd::Full => return Ok(MessageStatus::Complete),
                RoundEnd::Cancelled => return Ok(MessageStatus::Interrupted),
                RoundEnd::Failed(error) => return Err(Failure::Provider(error)),
            };
            if completion.tool_calls.is_empty() {
                return Ok(MessageStatus::Complete);
            }
            if tool_choice == ToolChoice::None || tools.is_empty() {
                tracing::warn!(round, "the model called tools when it was told to answer");
                return Err(Failure::ToolRoundsExceeded);
            }
            generated.tool_calls += completion.tool_calls.len();
            let round_text = generated.content[round_start..].to_owned();
            let tool_round = ToolRound {
                db: &self.db,
                channel: &self.channel,
                registry: &self.tools,
                reply_id: self.reply_id,
                round,
                cancel: &self.cancel,
            };
            let Ok(results) = tool_round.run(&completion.tool_calls).await else {
                return Ok(MessageStatus::Interrupted);
            };
            messages.push(ChatMessage::tool_calls(round_text, completion.tool_calls));
            messages.extend(results);
            round += 1;
        }
    }

    /// Stream one model response, publishing its text as deltas of the reply.
    async fn stream_round(
        &self,
        mut stream: ReplyStream,
        generated: &mut Generated,
        checkpoints: &mut Checkpoints,
    ) -> RoundEnd {
        loop {
            let item = tokio::select! {
                biased;
                () = self.cancel.cancelled() => return RoundEnd::Cancelled,
                item = stream.next() => item,
                () = sleep_until_some(checkpoints.deadline()) => {
                    let reserved = self.channel.reserved_through();
                    checkpoint::save(&self.writer, &self.channel, self.reply_id, &generated.content, reserved).await;
                    // Saved or not, try again only once the text grows.
                    checkpoints.saved();
                    continue;
                }
            };
            match item {
                Some(Ok(StreamEvent::Delta(text))) => {
                    let room = self
                        .settings
                        .max_reply_chars
                        .saturating_sub(generated.chars);
                    let (text, clipped) = clip_chars(text, room);
                    generated.chars += text.chars().count();
                    for piece in split_chars(&text, MAX_DELTA_CHARS) {
                        generated.content.push_str(piece);
                        self.publish_delta(piece.to_owned(), &generated.content, checkpoints)
                            .await;
                    }
                    if clipped {
                        tracing::info!(
                            max = self.settings.max_reply_chars,
                            "reply reached max_reply_chars"
                        );
                        return RoundEnd::Full;
                    }
                }
                Some(Ok(StreamEvent::Finished(completion))) => {
                    return RoundEnd::Finished(completion)
                }
                Some(Err(error)) => return RoundEnd::Failed(error),
                None => {
                    return RoundEnd::Failed(ProviderError::Protocol(
                        "stream ended without a finish".into(),
                    ))
                }
            }
        }
    }

    /// Publish one delta; `text` is the reply so far, this delta included.
    /// A delta beyond the reserved seqs first reserves more, and a due
    /// checkpoint is saved with it.
    async fn publish_delta(&self, piece: String, text: &str, checkpoints: &mut Checkpoints) {
        self.clock.delta();
        let message_id = self.reply_id;
        let channel = &self.channel;
        let checkpoint_due = checkpoints.due();
        let mut saved = false;
        let saved_flag = &mut saved;
        let published = channel
            .publish(|seq| async move {
                let reserved = channel.reserved_through();
                if seq > reserved || checkpoint_due {
                    let through = if seq > reserved {
                        seq + SEQ_RESERVATION
                    } else {
                        reserved
                    };
                    *saved_flag =
                        checkpoint::save(&self.writer, channel, message_id, text, through).await;
                }
                Ok::<_, std::convert::Infallible>(ServerEvent::Delta {
                    message_id,
                    seq,
                    content: piece,
                })
            })
            .await;
        if let Err(never) = published {
            match never {}
        }
        if saved {
            checkpoints.saved();
        } else {
            checkpoints.grew();
        }
    }

    /// Publish the reply's `error` event. The seq it uses is recorded as the
    /// conversation's `last_seq` when the database allows; the event is sent
    /// either way, since the reply's final message follows it.
    async fn publish_error(&self, code: &'static str) {
        let message_id = self.reply_id;
        let db = &self.db;
        let conversation_id = self.channel.id;
        let published = self
            .channel
            .publish(|seq| async move {
                if let Err(error) = store::advance_last_seq(db, conversation_id, seq).await {
                    tracing::error!(%error, "could not record a reply error's seq");
                }
                Ok::<_, std::convert::Infallible>(ServerEvent::Error {
                    code: code.into(),
                    message: error_text(code).into(),
                    message_id: Some(message_id),
                    seq: Some(seq),
                    client_id: None,
                    quota: None,
                })
            })
            .await;
        if let Err(never) = published {
            match never {}
        }
    }

    /// Store the reply and publish it as the final `message` event. When it
    /// cannot be stored (after retries) or its conversation is gone, the
    /// final events are published from memory: every reply ends for every
    /// listener, whatever failed.
    async fn store_final(
        &self,
        content: &str,
        status: MessageStatus,
        error_code: Option<&str>,
        usage: store::UsageDelta,
    ) {
        let reply = FinishedReply {
            reply_id: self.reply_id,
            content,
            status,
            error_code,
            question_id: Some(self.question_id),
            usage: Some(usage.clone()),
        };
        let storage = Storage {
            writer: &self.writer,
            db: &self.db,
        };
        let code = match publish_reply(storage, &self.channel, &reply).await {
            Ok(_) => {
                tracing::debug!(status = status.as_str(), "reply stored");
                self.billing.metrics.count(&usage);
                return;
            }
            Err(StoreError::NotFound) => {
                tracing::info!("conversation deleted during the reply");
                "not_found"
            }
            Err(error) => {
                tracing::error!(%error, "storing the reply failed");
                "storage_error"
            }
        };
        publish_unstored_end(&self.channel, self.reply_id, content, code).await;
    }
}
