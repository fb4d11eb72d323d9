//! Replies whose node died (cluster mode): a user message with no reply in
//! a conversation nobody holds. A node that finds one takes the lease and
//! ends it as its clients last saw it: tool calls left running end with an
//! `interrupted` error, then the reply is stored `interrupted` with the text
//! its deltas carried (and metered, estimated, like a reply a crash cut:
//! [`super::recovery`]), each published like any event, so no client waits
//! for them forever.

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use colloquy_protocol::MessageStatus;
use futures::StreamExt;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::{
    events::tool_end,
    publish::{publish_reply, FinishedReply},
    recovery::repaired_usage,
    TurnService,
};
use crate::{
    cluster::{Acquired, Cluster},
    hub::{ChannelHandle, Hub},
    store::{self, StoreError, ToolCallEnd},
};

/// How far back a sweep after the first looks for unanswered messages.
const RECENT_MILLIS: i64 = 3_600_000;
/// Conversations finished at once.
const FINISH_AT_ONCE: usize = 16;
/// What a client is told of a tool call whose node died.
const INTERRUPTED_TOOL: &str = "The server running this tool stopped.";

/// Finish, every `every`, replies whose node died before answering: a user
/// message with no reply in a conversation nobody holds. The reply is
/// stored `interrupted` with what its clients saw and published, so no
/// client waits for it forever.
pub async fn sweep_abandoned(
    turns: Arc<TurnService>,
    hub: Arc<Hub>,
    cluster: Arc<Cluster>,
    every: Duration,
    stop: CancellationToken,
) {
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The first sweep looks at everything; later ones at the last hour
    // (a reply runs for minutes at most, and every node sweeps at start).
    let mut since = 0;
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = ticks.tick() => {
                let swept = finish_abandoned(&turns, &hub, &cluster, since).await;
                since = store::now_millis() - RECENT_MILLIS;
                match swept {
                    Ok(0) => {}
                    Ok(finished) => tracing::warn!(finished, "finished replies a stopped node left unanswered"),
                    Err(error) => tracing::warn!(%error, "looking for abandoned replies failed"),
                }
            }
        }
    }
}

async fn finish_abandoned(
    turns: &TurnService,
    hub: &Arc<Hub>,
    cluster: &Cluster,
    since: i64,
) -> Result<usize, StoreError> {
    // A conversation's unanswered messages in turn order, conversations at
    // once: a node that died mid-reply leaves many, all waited for.
    let mut abandoned: BTreeMap<Uuid, Vec<Unanswered>> = BTreeMap::new();
    for user_message in store::orphaned_user_messages_since(&turns.db, since).await? {
        if let Some(reply_id) = user_message.reply_id {
            abandoned
                .entry(user_message.conversation_id)
                .or_default()
                .push(Unanswered {
                    reply_id,
                    question_id: user_message.id,
                });
        }
    }
    let finished: Vec<Result<usize, StoreError>> = futures::stream::iter(abandoned)
        .map(|(conversation, replies)| {
            finish_conversation(turns, hub, cluster, conversation, replies)
        })
        .buffer_unordered(FINISH_AT_ONCE)
        .collect()
        .await;
    finished
        .into_iter()
        .try_fold(0, |total, done| Ok(total + done?))
}

/// Finish `replies` of `conversation` if nobody holds it; how many were.
async fn finish_conversation(
    turns: &TurnService,
    hub: &Arc<Hub>,
    cluster: &Cluster,
    conversation: Uuid,
    replies: Vec<Unanswered>,
) -> Result<usize, StoreError> {
    if cluster.leases.held_here(conversation)
        || !matches!(cluster.leases.holder(conversation).await, Ok(None))
    {
        return Ok(0);
    }
    let Ok(Acquired::Here(_guard)) = cluster.leases.acquire(conversation).await else {
        return Ok(0);
    };
    let mut finished = 0;
    for reply in replies {
        if finish_one(turns, hub, conversation, reply).await? {
            finished += 1;
        }
    }
    Ok(finished)
}

/// A reply its node left unwritten, and the question it answers.
struct Unanswered {
    reply_id: Uuid,
    question_id: Uuid,
}

/// End a reply as interrupted, holding its conversation's lease; false
/// when it was answered meanwhile.
async fn finish_one(
    turns: &TurnService,
    hub: &Arc<Hub>,
    conversation: Uuid,
    Unanswered {
        reply_id,
        question_id,
    }: Unanswered,
) -> Result<bool, StoreError> {
    // Answered just before its node let go of the lease?
    if store::find_message(&turns.db, conversation, reply_id)
        .await?
        .is_some()
    {
        return Ok(false);
    }
    let Some(numbering) = store::numbering(&turns.db, conversation).await? else {
        return Ok(false);
    };
    let channel = hub.channel(conversation, numbering.owner, numbering.last_seq);
    turns.catch_up(&channel).await?;
    end_running_tools(turns, &channel, reply_id).await?;
    // What its clients saw: the deltas in the stream, else the checkpoint.
    let content = match channel.streamed_text(reply_id).await {
        Some(text) => text,
        None => store::checkpointed_text(&turns.db, reply_id)
            .await?
            .unwrap_or_default(),
    };
    // Its node stopped before it knew what the reply cost: estimated.
    let question = store::find_message(&turns.db, conversation, question_id).await?;
    let calls = store::tool_calls_of_replies(&turns.db, conversation, &[reply_id]).await?;
    let usage = repaired_usage(
        turns
            .billing
            .reply_usage(numbering.owner, &turns.default_model_id()),
        question
            .as_ref()
            .map_or("", |question| question.content.as_str()),
        &content,
        calls.len(),
    );
    let reply = FinishedReply {
        reply_id,
        content: &content,
        status: MessageStatus::Interrupted,
        error_code: None,
        question_id: Some(question_id),
        usage: Some(usage),
    };
    publish_reply(turns.storage(), &channel, &reply).await?;
    Ok(true)
}

/// Store and publish an `interrupted` end for every call of `reply_id`
/// still running.
async fn end_running_tools(
    turns: &TurnService,
    channel: &ChannelHandle,
    reply_id: Uuid,
) -> Result<(), StoreError> {
    let db = &turns.db;
    for mut call in store::unfinished_tool_calls(db, channel.id, reply_id).await? {
        let call = &mut call;
        channel
            .publish(|seq| async move {
                let end = ToolCallEnd {
                    id: call.id,
                    conversation_id: call.conversation_id,
                    end_seq: seq,
                    outcome: Err(("interrupted", INTERRUPTED_TOOL)),
                    duration_ms: 0,
                };
                store::finish_tool_call(db, end).await?;
                call.error_code = Some("interrupted".into());
                call.error_message = Some(INTERRUPTED_TOOL.into());
                call.end_seq = Some(seq);
                call.duration_ms = Some(0);
                Ok::<_, StoreError>(tool_end(call, seq))
            })
            .await?;
    }
    Ok(())
}
