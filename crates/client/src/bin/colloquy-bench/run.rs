//! The load itself: users, sockets opened at a set rate, chat turns checked
//! event by event, optional chaos (sockets dropped mid-reply, then resumed).

use std::{
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

use colloquy_client::{auth, ChatSocket, ClientError, ServerEvent, SocketSettings};
use rand::Rng;
use tokio::sync::{watch, Semaphore};
use uuid::Uuid;

use crate::stats::{Totals, Which};

/// What one run does.
#[derive(Debug, Clone)]
pub struct Plan {
    pub base_url: String,
    pub sockets: usize,
    pub sockets_per_user: usize,
    pub connect_rate: u32,
    pub turns: usize,
    pub turn_concurrency: usize,
    /// Probability that a turn's socket is dropped mid-reply and resumed.
    pub chaos: f64,
    /// The reply every turn must end with and how many deltas carry it;
    /// `None` for a real model, whose replies are only checked for
    /// consistency (the final message equals its deltas).
    pub expected: Option<(String, usize)>,
}

/// Shared between the socket tasks and the coordinator.
pub struct Shared {
    pub totals: Mutex<Totals>,
    pub open_now: AtomicU64,
    /// Sockets that finished connecting (or gave up).
    pub settled: AtomicU64,
    /// Sockets that finished their turns (or gave up).
    pub finished: AtomicU64,
}

impl Shared {
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            totals: Mutex::new(Totals::default()),
            open_now: AtomicU64::new(0),
            settled: AtomicU64::new(0),
            finished: AtomicU64::new(0),
        })
    }

    fn totals(&self) -> std::sync::MutexGuard<'_, Totals> {
        self.totals.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Phase signals from the coordinator to the sockets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Phase {
    Connect,
    Turns,
    Release,
}

/// Anonymous users for the run, `sockets_per_user` sockets each.
pub async fn make_users(plan: &Plan) -> anyhow::Result<Vec<String>> {
    let users = plan.sockets.div_ceil(plan.sockets_per_user.max(1));
    let client = reqwest::Client::new();
    let limit = Arc::new(Semaphore::new(32));
    let mut tasks = Vec::with_capacity(users);
    for _ in 0..users {
        let client = client.clone();
        let base = plan.base_url.clone();
        let limit = limit.clone();
        tasks.push(tokio::spawn(async move {
            let _permit = limit.acquire().await;
            auth::anonymous_with(&client, &base).await
        }));
    }
    let mut tokens = Vec::with_capacity(users);
    for task in tasks {
        tokens.push(task.await??);
    }
    Ok(tokens)
}

/// Spawn one task per socket, opened at `connect_rate` per second.
pub async fn start_sockets(
    plan: Arc<Plan>,
    tokens: Vec<String>,
    shared: Arc<Shared>,
    phase: watch::Receiver<Phase>,
) {
    let turn_slots = Arc::new(Semaphore::new(plan.turn_concurrency.max(1)));
    let gap = Duration::from_secs_f64(1.0 / f64::from(plan.connect_rate.max(1)));
    let mut next = Instant::now();
    for index in 0..plan.sockets {
        let token = tokens[index / plan.sockets_per_user.max(1)].clone();
        tokio::spawn(socket_task(
            plan.clone(),
            token,
            shared.clone(),
            phase.clone(),
            turn_slots.clone(),
        ));
        next += gap;
        tokio::time::sleep_until(next.into()).await;
    }
}

async fn connect(settings: SocketSettings) -> Result<ChatSocket, ClientError> {
    let mut backoff = settings.backoff.clone();
    loop {
        match ChatSocket::connect(settings.clone()).await {
            Ok(socket) => return Ok(socket),
            Err(error) if !error.is_retryable() => return Err(error),
            Err(error) => match backoff.next_delay() {
                Some(delay) => tokio::time::sleep(delay).await,
                None => return Err(error),
            },
        }
    }
}

async fn socket_task(
    plan: Arc<Plan>,
    token: String,
    shared: Arc<Shared>,
    mut phase: watch::Receiver<Phase>,
    turn_slots: Arc<Semaphore>,
) {
    let connected = connect(SocketSettings::new(&plan.base_url, &token)).await;
    shared.settled.fetch_add(1, Ordering::Relaxed);
    let mut socket = match connected {
        Ok(socket) => socket,
        Err(error) => {
            tracing::warn!(%error, "socket could not connect");
            shared.totals().connect_failures += 1;
            shared.finished.fetch_add(1, Ordering::Relaxed);
            return;
        }
    };
    let open = shared.open_now.fetch_add(1, Ordering::Relaxed) + 1;
    {
        let mut totals = shared.totals();
        totals.sockets_opened += 1;
        totals.peak_held = totals.peak_held.max(open);
    }
    let _ = phase.wait_for(|p| *p >= Phase::Turns).await;
    for turn in 0..plan.turns {
        let Ok(_slot) = turn_slots.acquire().await else {
            break;
        };
        run_turn(&plan, &mut socket, &shared, turn).await;
    }
    {
        let audit = socket.audit();
        let mut totals = shared.totals();
        totals.lost += audit.lost();
        totals.duplicated += audit.duplicates;
        totals.out_of_order += audit.out_of_order;
        totals.reconnects += u64::from(socket.reconnects());
    }
    shared.finished.fetch_add(1, Ordering::Relaxed);
    let _ = phase.wait_for(|p| *p >= Phase::Release).await;
    shared.open_now.fetch_sub(1, Ordering::Relaxed);
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

/// One turn: send, then check every event up to the final message.
async fn run_turn(plan: &Plan, socket: &mut ChatSocket, shared: &Shared, turn: usize) {
    let client_id = format!("bench-{}-{turn}", Uuid::now_v7());
    let drop_after = rand::thread_rng()
        .gen_bool(plan.chaos.clamp(0.0, 1.0))
        .then(|| {
            let deltas = plan.expected.as_ref().map_or(4, |(_, deltas)| *deltas);
            rand::thread_rng().gen_range(1..=deltas.max(1))
        });
    shared.totals().turns_started += 1;
    let started = Instant::now();
    if socket
        .send_text(&question(turn), Some(&client_id))
        .await
        .is_err()
    {
        shared.totals().turns_failed += 1;
        return;
    }
    let mut reply_id = None;
    let mut text = String::new();
    let mut deltas = 0usize;
    let mut received = 0u64;
    let mut first_delta = None;
    let mut dropped = false;
    let outcome = loop {
        let event = match socket.next_event().await {
            Ok(event) => event,
            Err(ClientError::Disconnected) => {
                shared.totals().unexpected_drops += 1;
                if socket.resume().await.is_err() {
                    break Err("could not resume");
                }
                continue;
            }
            Err(_) => break Err("socket closed"),
        };
        match event {
            ServerEvent::Ack {
                client_id: Some(id),
                reply_id: reply,
                ..
            } if id == client_id => {
                reply_id = Some(reply);
                received += 1;
            }
            ServerEvent::Delta {
                message_id,
                content,
                ..
            } if Some(message_id) == reply_id => {
                received += 1;
                deltas += 1;
                text.push_str(&content);
                first_delta.get_or_insert_with(|| started.elapsed());
                if drop_after == Some(deltas) && !dropped {
                    dropped = true;
                    shared.totals().chaos_drops += 1;
                    socket.abort();
                    if socket.resume().await.is_err() {
                        break Err("could not resume after a chaos drop");
                    }
                }
            }
            ServerEvent::Message {
                message_id,
                content,
                ..
            } if Some(message_id) == reply_id => {
                received += 1;
                break Ok(content);
            }
            ServerEvent::Error { message_id, .. } => {
                shared.totals().error_events += 1;
                if message_id.is_some() && message_id == reply_id {
                    break Err("the reply failed");
                }
            }
            _ => {}
        }
    };
    let mut totals = shared.totals();
    // A real model's reply length is known only once it is whole.
    let deltas_expected = plan.expected.as_ref().map_or(deltas, |(_, deltas)| *deltas);
    totals.events_expected += deltas_expected as u64 + 2;
    totals.events_received += received;
    match outcome {
        Ok(final_text) => {
            totals.turns_completed += 1;
            let as_expected = plan
                .expected
                .as_ref()
                .is_none_or(|(reply, _)| *reply == final_text);
            if final_text != text || !as_expected {
                totals.replies_mismatched += 1;
            }
            let total = started.elapsed();
            if let Some(first) = first_delta {
                totals.record(Which::FirstDelta, first);
                totals.generated_tokens += deltas.saturating_sub(1) as u64;
                totals.generation_time += total.saturating_sub(first);
            }
            totals.record(Which::Final, total);
        }
        Err(why) => {
            tracing::warn!(why, "turn failed");
            totals.turns_failed += 1;
        }
    }
}
