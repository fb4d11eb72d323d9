//! Regenerate: a new reply to the question an earlier reply answered,
//! stored beside it as an alternative (both have the question as parent).
//! The new reply becomes the question's `reply_id` (crash repair finishes
//! it like any reply) and the conversation's active leaf; the earlier one
//! stays, reachable by switching branch.

use std::sync::atomic::Ordering;

use colloquy_protocol::Sender;
use uuid::Uuid;

use super::{
    clock, cluster::Holding, events::ack_event, ReplyStart, SubmitError, Submitted, TurnOptions,
    TurnService,
};
use crate::{cluster::forward::ForwardedSubmit, hub::ChannelHandle, store};

impl TurnService {
    /// Start a new reply to the question `reply_id` answered. Limited like
    /// a message (the owner's budget, the conversation's pending replies);
    /// the returned `ack` is the question's, naming the new reply.
    #[tracing::instrument(skip_all, fields(conversation_id = %channel.id, %reply_id))]
    pub async fn regenerate(
        &self,
        channel: &ChannelHandle,
        reply_id: Uuid,
        options: TurnOptions,
    ) -> Result<Submitted, SubmitError> {
        let clock = clock::TurnClock::start();
        if self.stopping.load(Ordering::Acquire) {
            return Err(SubmitError::ShuttingDown);
        }
        let not_a_reply = SubmitError::InvalidBranch("no reply with this id in this conversation");
        let reply = store::find_message(&self.db, channel.id, reply_id)
            .await?
            .filter(|message| message.sender == Sender::Assistant)
            .ok_or(not_a_reply)?;
        let question = match reply.parent_id {
            Some(parent) => store::find_message(&self.db, channel.id, parent).await?,
            None => None,
        }
        .filter(|message| message.sender == Sender::User)
        .ok_or(SubmitError::InvalidBranch(
            "this reply answers no question and cannot be regenerated",
        ))?;
        self.check_quota(channel, &options).await?;
        let forward = || ForwardedSubmit {
            conversation_id: channel.id,
            owner: channel.owner,
            content: String::new(),
            client_id: None,
            model: options.model.as_ref().map(|model| model.id.clone()),
            system_prompt: options.system_prompt.clone(),
            parent: options.parent,
            regenerate: Some(reply_id),
            voice_ms_in: 0,
        };
        let lease = match self.admit(channel, forward, options.forwarded).await? {
            Holding::Here(lease) => lease,
            Holding::Forwarded(submitted) => return Ok(submitted),
        };
        let new_reply_id = Uuid::now_v7();
        let mut tx = self.db.begin().await.map_err(store::StoreError::from)?;
        store::start_regeneration(&mut tx, channel.id, question.id, new_reply_id).await?;
        tx.commit().await.map_err(store::StoreError::from)?;
        let mut answered = question.clone();
        answered.reply_id = Some(new_reply_id);
        let start = ReplyStart {
            reply_id: new_reply_id,
            question_id: question.id,
            question: question.content,
            clock,
            lease,
        };
        self.start_reply(channel, start, options);
        Ok(Submitted {
            ack: ack_event(&answered),
            message_id: question.id,
            reply_id: new_reply_id,
            duplicate: false,
        })
    }
}
