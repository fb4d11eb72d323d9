//! One chat turn, checked event by event: send, `ack`, every delta, the
//! final message. A socket that drops (a chaos drop, a killed node, a
//! network fault) resumes with its last `seq` on another node; a message
//! whose `ack` never came is sent again with the same `client_id`; a refusal
//! that a later try can cure (a draining node, a lease the killed node
//! still holds) is retried.

use std::{
    sync::atomic::Ordering,
    time::{Duration, Instant},
};

use colloquy_client::{ChatSocket, ClientError, Seq, SeqAudit, ServerEvent};
use colloquy_protocol::MessageStatus;
use rand::Rng;
use uuid::Uuid;

use crate::{
    nodes::Placement,
    run::{Plan, Shared},
    stats::Which,
};

/// What a turn needs besides its socket.
pub struct TurnContext<'a> {
    pub plan: &'a Plan,
    pub shared: &'a Shared,
    /// Where this conversation's sender and watcher are.
    pub place: &'a Placement,
}

/// A turn with no new event for this long has hung (a killed node's reply
/// is finished by another node within 1.5 lease TTLs, 15 s by default).
const TURN_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Refusals of one message before its turn counts as failed: at one try per
/// `REFUSAL_PAUSE`, longer than any lease TTL or shutdown grace.
const MAX_REFUSALS: u32 = 60;
const REFUSAL_PAUSE: Duration = Duration::from_millis(500);
/// Turns with lost, duplicated or reordered events described in the report.
const ANOMALY_SAMPLES: usize = 12;

/// Refusals that a later try may not get: the node is draining, no lease
/// can be taken yet, or the conversation's holder has not let go yet.
fn worth_retrying(code: &str) -> bool {
    matches!(
        code,
        "shutting_down" | "unavailable" | "busy" | "storage_error"
    )
}

/// A short question that differs from turn to turn and socket to socket,
/// so a model cannot serve it from a cache of the previous prompt.
fn question(turn: usize) -> String {
    const TOPICS: [&str; 8] = [
        "the sea",
        "volcanoes",
        "bread",
        "owls",
        "trains",
        "chess",
        "rain",
        "bees",
    ];
    let topic = TOPICS[rand::thread_rng().gen_range(0..TOPICS.len())];
    format!(
        "Tell me one fact about {topic} (question {turn}-{}).",
        rand::thread_rng().gen_range(0..1000)
    )
}

/// What one turn is and what it saw so far.
struct Turn {
    /// Its place in the conversation (0: the first).
    index: usize,
    question: String,
    client_id: String,
    /// Chaos: drop the socket after this many deltas.
    drop_after: Option<usize>,
    started: Instant,
    reply_id: Option<Uuid>,
    text: String,
    deltas: usize,
    received: u64,
    first_delta: Option<Duration>,
    /// From sending to its `ack` (the message stored).
    acked: Option<Duration>,
    dropped: bool,
    refusals: u32,
    /// The sender's moves during this turn, for the anomaly samples.
    moves: Vec<String>,
}

enum Outcome {
    Complete(String),
    /// Ended `interrupted` after the bench killed a node.
    Interrupted(String),
    Failed(&'static str),
}

/// Why the sender moves to another node.
#[derive(Debug, PartialEq, Eq)]
enum Move {
    /// Its connection dropped: counted as caused by the kill or not.
    Dropped,
    /// The bench dropped it (counted by the caller).
    Chaos,
    /// Its node is draining; the socket itself is fine.
    Away,
}

/// One turn: send, then check every event up to the final message.
pub async fn run_turn(ctx: &TurnContext<'_>, socket: &mut ChatSocket, turn: usize) {
    let drop_after = rand::thread_rng()
        .gen_bool(ctx.plan.chaos.clamp(0.0, 1.0))
        .then(|| {
            let deltas = ctx.plan.expected.as_ref().map_or(4, |(_, deltas)| *deltas);
            rand::thread_rng().gen_range(1..=deltas.max(1))
        });
    let mut turn = Turn {
        index: turn,
        question: question(turn),
        client_id: format!("bench-{}-{turn}", Uuid::now_v7()),
        drop_after,
        started: Instant::now(),
        reply_id: None,
        text: String::new(),
        deltas: 0,
        received: 0,
        first_delta: None,
        acked: None,
        dropped: false,
        refusals: 0,
        moves: Vec::new(),
    };
    ctx.shared.totals().turns_started += 1;
    let before = socket.audit().clone();
    let outcome = converse(ctx, socket, &mut turn).await;
    sample_anomaly(ctx, socket, &turn, &before);
    account(ctx, &turn, outcome);
}

/// Keep a description of a turn whose events were lost, duplicated or
/// reordered: where the socket moved and which seqs went wrong, so a report
/// can say where to look.
fn sample_anomaly(ctx: &TurnContext<'_>, socket: &ChatSocket, turn: &Turn, before: &SeqAudit) {
    let after = socket.audit();
    if after == before {
        return;
    }
    let mut totals = ctx.shared.totals();
    if totals.anomalies.len() >= ANOMALY_SAMPLES {
        return;
    }
    let new_duplicates = &after.duplicate_samples()[before.duplicate_samples().len()..];
    let missing: Vec<Seq> = after
        .missing_seqs()
        .filter(|seq| !before.missing_seqs().any(|old| old == *seq))
        .take(16)
        .collect();
    totals.anomalies.push(format!(
        "conversation {} reply {}: {} deltas, last seq {}; moves [{}]; +{} duplicated (seqs {:?}), +{} out of order, lost seqs {:?}",
        socket.conversation_id(),
        turn.reply_id.map(|id| id.to_string()).unwrap_or_default(),
        turn.deltas,
        socket.last_seq(),
        turn.moves.join(", "),
        after.duplicates - before.duplicates,
        new_duplicates,
        after.out_of_order - before.out_of_order,
        missing,
    ));
}

async fn converse(ctx: &TurnContext<'_>, socket: &mut ChatSocket, turn: &mut Turn) -> Outcome {
    // A failed send needs nothing here: the next read fails too, and the
    // socket resumes and sends again below.
    let _ = socket
        .send_text(&turn.question, Some(&turn.client_id))
        .await;
    loop {
        let event = match tokio::time::timeout(TURN_IDLE_TIMEOUT, socket.next_event()).await {
            Err(_) => return Outcome::Failed("no event for 60 s"),
            Ok(Ok(event)) => event,
            Ok(Err(error)) if error.is_retryable() => {
                if move_sender(ctx, socket, turn, Move::Dropped).await.is_err() {
                    return Outcome::Failed("could not resume");
                }
                if turn.reply_id.is_none() {
                    // Stored or not, it is safe to send again.
                    let _ = socket.resend_text(&turn.question, &turn.client_id).await;
                }
                continue;
            }
            Ok(Err(_)) => return Outcome::Failed("socket closed"),
        };
        match event {
            ServerEvent::Ack {
                client_id: Some(id),
                reply_id,
                ..
            } if id == turn.client_id => {
                turn.reply_id = Some(reply_id);
                turn.received += 1;
                let started = turn.started;
                turn.acked.get_or_insert_with(|| started.elapsed());
            }
            ServerEvent::Delta {
                message_id,
                content,
                ..
            } if Some(message_id) == turn.reply_id => {
                turn.received += 1;
                turn.deltas += 1;
                turn.text.push_str(&content);
                let started = turn.started;
                turn.first_delta.get_or_insert_with(|| started.elapsed());
                if turn.drop_after == Some(turn.deltas) && !turn.dropped {
                    turn.dropped = true;
                    ctx.shared.totals().chaos_drops += 1;
                    socket.abort();
                    if move_sender(ctx, socket, turn, Move::Chaos).await.is_err() {
                        return Outcome::Failed("could not resume after a chaos drop");
                    }
                }
            }
            ServerEvent::Message {
                message_id,
                content,
                status,
                ..
            } if Some(message_id) == turn.reply_id => {
                turn.received += 1;
                let killed = ctx.shared.kill.get().is_some();
                return if status == MessageStatus::Interrupted && killed {
                    Outcome::Interrupted(content)
                } else {
                    Outcome::Complete(content)
                };
            }
            // A refusal of this message (not of a resend of one already acked).
            ServerEvent::Error {
                client_id: Some(id),
                code,
                ..
            } if id == turn.client_id && turn.reply_id.is_none() => {
                {
                    let mut totals = ctx.shared.totals();
                    totals.error_events += 1;
                    *totals.error_codes.entry(code.clone()).or_default() += 1;
                }
                if !worth_retrying(&code) || turn.refusals >= MAX_REFUSALS {
                    tracing::warn!(code, "message refused");
                    return Outcome::Failed("the message was refused");
                }
                turn.refusals += 1;
                ctx.shared.totals().refusals_retried += 1;
                if code == "shutting_down" {
                    socket.abort();
                    if move_sender(ctx, socket, turn, Move::Away).await.is_err() {
                        return Outcome::Failed("could not leave a draining node");
                    }
                }
                tokio::time::sleep(REFUSAL_PAUSE).await;
                let _ = socket.resend_text(&turn.question, &turn.client_id).await;
            }
            ServerEvent::Error {
                message_id, code, ..
            } => {
                let mut totals = ctx.shared.totals();
                totals.error_events += 1;
                *totals.error_codes.entry(code).or_default() += 1;
                drop(totals);
                if message_id.is_some() && message_id == turn.reply_id {
                    return Outcome::Failed("the reply failed");
                }
            }
            _ => {}
        }
    }
}

/// Resume the sender on another node than before (and than its watcher's,
/// if a third is up); with one server, on that server again.
async fn move_sender(
    ctx: &TurnContext<'_>,
    socket: &mut ChatSocket,
    turn: &mut Turn,
    why: Move,
) -> Result<(), ClientError> {
    let nodes = &ctx.plan.nodes;
    if why == Move::Dropped {
        let mut totals = ctx.shared.totals();
        if nodes.is_down(ctx.place.sender.load(Ordering::Relaxed)) {
            totals.kill_drops += 1;
        } else {
            totals.unexpected_drops += 1;
        }
    }
    let why = format!("{why:?}");
    nodes
        .resume_elsewhere(
            socket,
            &ctx.place.sender,
            &ctx.place.watcher,
            (&why, &mut turn.moves),
        )
        .await
}

fn account(ctx: &TurnContext<'_>, turn: &Turn, outcome: Outcome) {
    let plan = ctx.plan;
    let mut totals = ctx.shared.totals();
    // A real model's reply length is known only once it is whole, and an
    // interrupted one's only from what was sent of it.
    let deltas_expected = match (&outcome, &plan.expected) {
        (Outcome::Interrupted(_), _) | (_, None) => turn.deltas,
        (_, Some((_, deltas))) => *deltas,
    };
    totals.events_expected += deltas_expected as u64 + 2;
    totals.events_received += turn.received;
    match outcome {
        Outcome::Complete(final_text) => {
            totals.turns_completed += 1;
            let as_expected = plan
                .expected
                .as_ref()
                .is_none_or(|(reply, _)| *reply == final_text);
            if final_text != turn.text || !as_expected {
                totals.replies_mismatched += 1;
            }
            let total = turn.started.elapsed();
            if let Some(first) = turn.first_delta {
                totals.record(Which::FirstDelta, first);
                let by_place = if turn.index == 0 {
                    Which::FirstTurnFirstDelta
                } else {
                    Which::FollowUpFirstDelta
                };
                totals.record(by_place, first);
                totals.generated_tokens += turn.deltas.saturating_sub(1) as u64;
                totals.generation_time += total.saturating_sub(first);
            }
            totals.record(Which::Final, total);
            if let Some(acked) = turn.acked {
                totals.record(Which::Ack, acked);
            }
        }
        Outcome::Interrupted(final_text) => {
            totals.turns_interrupted += 1;
            // The stored text must be what the clients were sent.
            if final_text != turn.text {
                totals.interrupted_mismatched += 1;
            }
            if let Some(kill) = ctx.shared.kill.get() {
                totals.record(Which::KillToInterrupted, kill.at.elapsed());
            }
        }
        Outcome::Failed(why) => {
            totals.turns_failed += 1;
            *totals.failure_reasons.entry(why).or_default() += 1;
        }
    }
}
