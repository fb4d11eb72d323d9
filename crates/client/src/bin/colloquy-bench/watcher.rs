//! A conversation's watcher: a second socket of the same user on another
//! node than the sender's, which only reads. It must see every event of
//! every turn exactly once and in order, as the sender does: that is the
//! cluster's fan-out (through the broker) under test. It reads until it has
//! the conversation's last `seq`, which the sender hands over when its
//! turns are done.

use std::{collections::HashMap, sync::atomic::Ordering, sync::Arc, time::Duration};

use colloquy_client::{ChatSocket, ClientError, Seq, ServerEvent};
use colloquy_protocol::{MessageStatus, Sender};
use tokio::sync::watch;
use uuid::Uuid;

use crate::{
    nodes::Placement,
    run::{Plan, Shared},
};

/// What a watcher needs besides its socket.
pub struct WatchContext {
    pub plan: Arc<Plan>,
    pub shared: Arc<Shared>,
    pub place: Arc<Placement>,
}

/// Watchers with lost, duplicated or reordered events described in the
/// report (the senders' turns add their own, up to the same number).
const ANOMALY_SAMPLES: usize = 12;

/// How long a watcher waits for the rest once it knows the last `seq`.
const TAIL_TIMEOUT: Duration = Duration::from_secs(60);
/// Before that it waits for the sender, whose turns have their own timeout.
const SENDER_TIMEOUT: Duration = Duration::from_secs(24 * 3600);

/// What one watcher saw.
#[derive(Default)]
struct Seen {
    received: u64,
    /// Text so far of each reply not finished yet.
    replies: HashMap<Uuid, String>,
    replies_seen: u64,
    replies_mismatched: u64,
    replies_interrupted: u64,
    kill_drops: u64,
    unexpected_drops: u64,
    /// Where the watcher moved, for the anomaly samples.
    moves: Vec<String>,
}

impl Seen {
    fn observe(&mut self, plan: &Plan, event: ServerEvent) {
        if event.seq().is_some() {
            self.received += 1;
        }
        match event {
            ServerEvent::Delta {
                message_id,
                content,
                ..
            } => self
                .replies
                .entry(message_id)
                .or_default()
                .push_str(&content),
            ServerEvent::Message {
                message_id,
                content,
                status,
                sender: Sender::Assistant,
                is_final: true,
                ..
            } => {
                self.replies_seen += 1;
                let text = self.replies.remove(&message_id).unwrap_or_default();
                let interrupted = status == MessageStatus::Interrupted;
                // An interrupted reply is only whatever its deltas carried.
                let as_expected = interrupted
                    || plan
                        .expected
                        .as_ref()
                        .is_none_or(|(reply, _)| *reply == content);
                if text != content || !as_expected {
                    self.replies_mismatched += 1;
                }
                if interrupted {
                    self.replies_interrupted += 1;
                }
            }
            _ => {}
        }
    }
}

/// Read `socket` until it has the `seq` `goal` brings (or gives up), then
/// add what it saw to the totals.
pub async fn watch(
    ctx: WatchContext,
    mut socket: ChatSocket,
    mut goal: watch::Receiver<Option<Seq>>,
) {
    let mut seen = Seen::default();
    let complete = loop {
        let target = *goal.borrow_and_update();
        if target.is_some_and(|target| socket.last_seq() >= target) {
            break true;
        }
        let patience = if target.is_some() {
            TAIL_TIMEOUT
        } else {
            SENDER_TIMEOUT
        };
        tokio::select! {
            changed = goal.changed(), if target.is_none() => {
                if changed.is_err() {
                    break false;
                }
            }
            event = tokio::time::timeout(patience, socket.next_event()) => match event {
                Err(_) => break false,
                Ok(Ok(event)) => seen.observe(&ctx.plan, event),
                Ok(Err(error)) if error.is_retryable() => {
                    if move_watcher(&ctx, &mut socket, &mut seen).await.is_err() {
                        break false;
                    }
                }
                Ok(Err(_)) => break false,
            }
        }
    };
    let target = goal.borrow().unwrap_or_else(|| socket.last_seq());
    let audit = socket.audit();
    let mut totals = ctx.shared.totals();
    let unclean = audit.lost() + audit.duplicates + audit.out_of_order > 0;
    if (unclean || !complete) && totals.anomalies.len() < ANOMALY_SAMPLES {
        let lost: Vec<Seq> = audit.missing_seqs().take(16).collect();
        totals.anomalies.push(format!(
            "watcher of conversation {}: last seq {} of {target}; moves [{}]; duplicated seqs {:?}, {} out of order, lost seqs {lost:?}",
            socket.conversation_id(),
            socket.last_seq(),
            seen.moves.join(", "),
            audit.duplicate_samples(),
            audit.out_of_order,
        ));
    }
    let w = &mut totals.watchers;
    // The conversation was empty when the watcher opened it, so its events
    // are seqs 1 to the sender's last.
    w.events_expected += target;
    w.events_received += seen.received;
    // Whatever never came after the last seq seen is lost too.
    w.lost += audit.lost() + target.saturating_sub(socket.last_seq());
    w.duplicated += audit.duplicates;
    w.out_of_order += audit.out_of_order;
    w.replies_seen += seen.replies_seen;
    w.replies_mismatched += seen.replies_mismatched;
    w.replies_interrupted += seen.replies_interrupted;
    w.kill_drops += seen.kill_drops;
    w.unexpected_drops += seen.unexpected_drops;
    w.reconnects += u64::from(socket.reconnects());
    if !complete {
        w.incomplete += 1;
    }
}

/// Resume the watcher on another node than before and than its sender's.
async fn move_watcher(
    ctx: &WatchContext,
    socket: &mut ChatSocket,
    seen: &mut Seen,
) -> Result<(), ClientError> {
    let nodes = &ctx.plan.nodes;
    if nodes.is_down(ctx.place.watcher.load(Ordering::Relaxed)) {
        seen.kill_drops += 1;
    } else {
        seen.unexpected_drops += 1;
    }
    nodes
        .resume_elsewhere(
            socket,
            &ctx.place.watcher,
            &ctx.place.sender,
            ("Dropped", &mut seen.moves),
        )
        .await
}
