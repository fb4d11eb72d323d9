//! Tool calls of a live speech-to-speech session (Gemini Live). There the
//! provider keeps the conversation and decides when to call a tool; the
//! server only runs the calls it asks for. Each call runs as one round of
//! the agent loop's [`ToolRound`] for the spoken reply it belongs to, so it
//! is stored, announced (`tool` `start` and `end`), time- and size-limited
//! and cancelled exactly like the calls of a text reply.

use std::future::Future;

use colloquy_ai::ToolCall;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::{tools::ToolRound, TurnService};
use crate::hub::ChannelHandle;

/// One call a live session asked for.
pub struct LiveToolCall {
    pub channel: ChannelHandle,
    /// The spoken reply the call belongs to (the `message_id` of its events).
    pub reply_id: Uuid,
    /// Which call of that reply this is (0 for the first): each call is its
    /// own round, since the provider may cancel calls one by one.
    pub round: u32,
    pub call: ToolCall,
    /// Cancels the call; get it from [`TurnService::live_tool_token`].
    pub cancel: CancellationToken,
}

impl TurnService {
    /// A token for a [`LiveToolCall`]: cancelled by its owner, and at
    /// shutdown like every running reply.
    pub fn live_tool_token(&self) -> CancellationToken {
        self.stop_replies.child_token()
    }

    /// Run `job`: the tool's result as the model should read it (JSON
    /// text, an `{"error": ...}` object when the tool failed), or `None`
    /// when the call was cancelled.
    pub fn run_live_tool_call(
        &self,
        job: LiveToolCall,
    ) -> impl Future<Output = Option<String>> + Send + 'static {
        let db = self.db.clone();
        let registry = self.tools.clone();
        async move {
            let round = ToolRound {
                db: &db,
                channel: &job.channel,
                registry: &registry,
                reply_id: job.reply_id,
                round: job.round,
                cancel: &job.cancel,
            };
            let mut results = round.run(std::slice::from_ref(&job.call)).await.ok()?;
            results.pop().map(|result| result.content)
        }
    }
}
