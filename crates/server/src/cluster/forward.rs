//! A message sent through a node that does not hold its conversation's
//! lease is handed to the node that does, over a NATS request: that node
//! stores it, acks it and answers it in order with its other messages, as
//! one node would. The ack comes back as the request's reply; every event
//! reaches the sender's node through the stream like any other.

use std::{sync::Arc, time::Duration};

use bytes::Bytes;
use colloquy_protocol::ServerEvent;
use futures::{future::BoxFuture, StreamExt};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::Cluster;

/// How long a forwarded message may take to be stored and acked.
const FORWARD_TIMEOUT: Duration = Duration::from_secs(10);

/// A user message for the lease holder to submit.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ForwardedSubmit {
    pub conversation_id: Uuid,
    /// The conversation's owner, whose budgets the turn uses.
    pub owner: Uuid,
    pub content: String,
    pub client_id: Option<String>,
    /// The model the message picked (by id), if any.
    pub model: Option<String>,
    pub system_prompt: Option<String>,
    /// The message it follows (an edit names one).
    #[serde(default)]
    pub parent: crate::store::Parent,
    /// Not a message: regenerate this reply (`content` is empty).
    #[serde(default)]
    pub regenerate: Option<Uuid>,
    /// Milliseconds of speech the message was transcribed from (0: typed).
    #[serde(default)]
    pub voice_ms_in: u64,
}

/// The holder's answer: the ack, or why the message was refused.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum ForwardedReply {
    Accepted {
        ack: ServerEvent,
        message_id: Uuid,
        reply_id: Uuid,
        duplicate: bool,
    },
    /// A [`crate::turn::SubmitError`] code.
    Refused { code: String },
}

/// Why a forward got no answer.
#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    /// The holder is gone (its lease will expire): try again shortly.
    #[error("the node holding the conversation is not answering")]
    NoHolder,
    #[error("the cluster could not carry the message: {0}")]
    Broker(String),
}

/// What answers forwarded messages on this node.
pub type SubmitHandler =
    Arc<dyn Fn(ForwardedSubmit) -> BoxFuture<'static, ForwardedReply> + Send + Sync>;

impl Cluster {
    /// Hand `submit` to `node` and wait for its answer.
    pub async fn forward(
        &self,
        node: &str,
        submit: &ForwardedSubmit,
    ) -> Result<ForwardedReply, ForwardError> {
        let payload =
            serde_json::to_vec(submit).map_err(|e| ForwardError::Broker(e.to_string()))?;
        let request = async_nats::Request::new()
            .payload(Bytes::from(payload))
            .timeout(Some(FORWARD_TIMEOUT));
        let answer = self
            .client
            .send_request(self.names.submit(node), request)
            .await;
        let message = match answer {
            Ok(message) => message,
            Err(error) => {
                return Err(match error.kind() {
                    async_nats::RequestErrorKind::NoResponders => ForwardError::NoHolder,
                    _ => ForwardError::Broker(error.to_string()),
                })
            }
        };
        serde_json::from_slice(&message.payload).map_err(|e| ForwardError::Broker(e.to_string()))
    }

    /// Answer messages other nodes forward to this one with `handler`, until `stop`.
    pub async fn serve_forwarded(self: Arc<Self>, handler: SubmitHandler, stop: CancellationToken) {
        loop {
            let served = async {
                let mut requests = self.client.subscribe(self.names.submit(&self.node)).await?;
                while let Some(request) = requests.next().await {
                    let Some(reply_to) = request.reply.clone() else {
                        continue;
                    };
                    let Ok(submit) = serde_json::from_slice::<ForwardedSubmit>(&request.payload)
                    else {
                        tracing::warn!("a forwarded message could not be read");
                        continue;
                    };
                    // Each on its own task: one slow store must not hold up the rest.
                    let (handler, client) = (handler.clone(), self.client.clone());
                    tokio::spawn(async move {
                        let answer = handler(submit).await;
                        let Ok(payload) = serde_json::to_vec(&answer) else {
                            return;
                        };
                        if let Err(error) = client.publish(reply_to, Bytes::from(payload)).await {
                            tracing::warn!(%error, "the answer to a forwarded message was lost");
                        }
                    });
                }
                Ok::<(), async_nats::Error>(())
            };
            if !super::attempt(&stop, served, "answering forwarded messages").await {
                return;
            }
        }
    }
}
