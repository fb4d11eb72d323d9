//! A turn in cluster mode. Before a node writes to a conversation it holds
//! the conversation's lease and has caught up with whatever the previous
//! holder published, so numbering continues exactly; a message that arrives
//! while another node holds the lease is forwarded there
//! ([`crate::cluster::forward`]). A reply whose node died is finished by
//! another ([`super::abandoned`]).

use std::{sync::Arc, time::Duration};

use super::{SubmitError, Submitted, TurnOptions, TurnService};
use crate::{
    cluster::{
        forward::{ForwardError, ForwardedReply, ForwardedSubmit, SubmitHandler},
        Acquired, LeaseGuard,
    },
    hub::{ChannelHandle, Hub},
    input::{ClientId, UserText},
    store::{self, StoreError},
};

/// How long a new holder waits for the live feed to bring the previous
/// holder's last events before reading them from the stream itself.
const CATCH_UP_WAIT: Duration = Duration::from_secs(2);
/// How often a writer asks again for a lease another node holds.
const RETRY_EVERY: Duration = Duration::from_millis(100);

/// Where a submitted message went.
pub(super) enum Holding {
    /// This node writes it (holding the lease, in cluster mode).
    Here(Option<LeaseGuard>),
    /// The lease holder stored and acked it.
    Forwarded(Submitted),
}

impl SubmitError {
    /// The error a forwarded message was refused with, from its code.
    fn from_code(code: &str) -> Self {
        match code {
            "shutting_down" => SubmitError::ShuttingDown,
            "not_found" => SubmitError::ConversationGone,
            "busy" => SubmitError::Busy,
            "rate_limited" => SubmitError::RateLimited,
            "storage_error" => SubmitError::Store(StoreError::Unavailable),
            "invalid_branch" => {
                SubmitError::InvalidBranch("the branch named is not in this conversation")
            }
            _ => SubmitError::ClusterUnavailable,
        }
    }
}

impl TurnService {
    /// Hold `channel`'s conversation to write a user message to it, or hand
    /// the message to the node that holds it. Waits (up to a lease TTL) for
    /// a holder that stopped answering to lose its lease.
    pub(super) async fn hold_or_forward(
        &self,
        channel: &ChannelHandle,
        forward: impl Fn() -> ForwardedSubmit,
        forwarded: bool,
    ) -> Result<Holding, SubmitError> {
        let Some(cluster) = &self.cluster else {
            return Ok(Holding::Here(None));
        };
        let deadline = tokio::time::Instant::now() + cluster.lease_ttl() + CATCH_UP_WAIT;
        loop {
            // Known to be cut off: say so now rather than after time-outs.
            if !cluster.connected() {
                return Err(SubmitError::ClusterUnavailable);
            }
            let acquired = cluster.leases.acquire(channel.id).await.map_err(|error| {
                tracing::warn!(%error, "cannot take a conversation's lease");
                SubmitError::ClusterUnavailable
            })?;
            match acquired {
                Acquired::Here(guard) => {
                    self.catch_up(channel).await?;
                    return Ok(Holding::Here(Some(guard)));
                }
                // A forwarded message is not forwarded again: it waits for
                // the lease, so two nodes never pass it back and forth.
                Acquired::Elsewhere(node) if !node.is_empty() && !forwarded => {
                    match cluster.forward(&node, &forward()).await {
                        Ok(ForwardedReply::Accepted {
                            ack,
                            message_id,
                            reply_id,
                            duplicate,
                        }) => {
                            return Ok(Holding::Forwarded(Submitted {
                                ack,
                                message_id,
                                reply_id,
                                duplicate,
                            }))
                        }
                        Ok(ForwardedReply::Refused { code }) => {
                            return Err(SubmitError::from_code(&code))
                        }
                        // Dead holder: its lease expires within the TTL.
                        Err(ForwardError::NoHolder) => {}
                        Err(ForwardError::Broker(error)) => {
                            tracing::warn!(%error, "cannot forward a message to its conversation's node");
                            return Err(SubmitError::ClusterUnavailable);
                        }
                    }
                }
                Acquired::Elsewhere(_) => {}
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(SubmitError::Busy);
            }
            tokio::time::sleep(RETRY_EVERY).await;
        }
    }

    /// [`TurnService::hold_or_forward`] for a new reply, then its limits:
    /// every transport pays the owner's message budget here, and a
    /// conversation has at most `max_pending_replies` waiting.
    pub(super) async fn admit(
        &self,
        channel: &ChannelHandle,
        forward: impl Fn() -> ForwardedSubmit,
        forwarded: bool,
    ) -> Result<Holding, SubmitError> {
        let holding = self.hold_or_forward(channel, forward, forwarded).await?;
        if let Holding::Here(_) = holding {
            if !self.limits.allow_user_message(channel.owner) {
                return Err(SubmitError::RateLimited);
            }
            if self.replies.pending(channel.id) >= self.settings.max_pending_replies {
                return Err(SubmitError::Busy);
            }
        }
        Ok(holding)
    }

    /// Hold `channel`'s conversation to store something this node already
    /// has (a voice exchange), waiting up to a lease TTL for another holder
    /// to finish.
    pub(super) async fn hold(
        &self,
        channel: &ChannelHandle,
    ) -> Result<Option<LeaseGuard>, SubmitError> {
        let no_forward = || ForwardedSubmit {
            conversation_id: channel.id,
            owner: channel.owner,
            content: String::new(),
            client_id: None,
            model: None,
            system_prompt: None,
            parent: crate::store::Parent::ActiveLeaf,
            regenerate: None,
            voice_ms_in: 0,
        };
        match self.hold_or_forward(channel, no_forward, true).await? {
            Holding::Here(guard) => Ok(guard),
            Holding::Forwarded(_) => Err(SubmitError::Busy),
        }
    }

    /// Bring `channel` up to date before this node writes to it: the events
    /// the previous holder published, and the numbering the database has
    /// (stored messages, reserved seqs), which continues from there.
    pub(super) async fn catch_up(&self, channel: &ChannelHandle) -> Result<(), StoreError> {
        channel.catch_up(CATCH_UP_WAIT).await;
        if let Some(numbering) = store::numbering(&self.db, channel.id).await? {
            channel.advance_to(numbering.last_seq).await;
            channel.reserve_through(numbering.seq_reserved);
            // Another node stored it with its first message.
            channel.mark_stored();
        }
        Ok(())
    }
}

/// What answers the messages other nodes forward to this one.
pub fn submit_handler(hub: Arc<Hub>, turns: Arc<TurnService>) -> SubmitHandler {
    Arc::new(move |submit: ForwardedSubmit| {
        let (hub, turns) = (hub.clone(), turns.clone());
        Box::pin(async move {
            match submit_forwarded(&hub, &turns, submit).await {
                Ok(submitted) => ForwardedReply::Accepted {
                    ack: submitted.ack,
                    message_id: submitted.message_id,
                    reply_id: submitted.reply_id,
                    duplicate: submitted.duplicate,
                },
                Err(error) => ForwardedReply::Refused {
                    code: error.code().to_owned(),
                },
            }
        })
    })
}

async fn submit_forwarded(
    hub: &Arc<Hub>,
    turns: &TurnService,
    submit: ForwardedSubmit,
) -> Result<Submitted, SubmitError> {
    let id = submit.conversation_id;
    // The channel in memory first: a new conversation's first message may
    // still be being stored here.
    let channel = match hub.live(id) {
        Some(channel) if channel.owner == submit.owner => channel,
        Some(_) => return Err(SubmitError::ConversationGone),
        None => match store::numbering(&turns.db, id).await? {
            Some(numbering) if numbering.owner == submit.owner => {
                hub.channel(id, numbering.owner, numbering.last_seq)
            }
            _ => return Err(SubmitError::ConversationGone),
        },
    };
    let options = TurnOptions {
        system_prompt: submit.system_prompt,
        model: submit
            .model
            .and_then(|model| turns.models.find(&model).cloned()),
        forwarded: true,
        parent: submit.parent,
        // Checked and dated by the node that took the message.
        voice_ms_in: submit.voice_ms_in,
    };
    if let Some(reply_id) = submit.regenerate {
        return turns.regenerate(&channel, reply_id, options).await;
    }
    // Checked by the node that took the message; its own limit applies there.
    let text = UserText::parse(submit.content, usize::MAX)
        .map_err(|_| SubmitError::Store(StoreError::Corrupt("forwarded text".into())))?;
    let client_id = submit
        .client_id
        .map(ClientId::parse)
        .transpose()
        .map_err(|_| SubmitError::Store(StoreError::Corrupt("forwarded client_id".into())))?;
    turns.submit_with(&channel, text, client_id, options).await
}
