//! The load itself: users, sockets opened at a set rate over the run's
//! servers, each with its turns (see [`crate::turn`]) and, on a cluster, a
//! watcher on another node (see [`crate::watcher`]).

use std::{
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex, OnceLock,
    },
    time::{Duration, Instant},
};

use colloquy_client::{auth, conversations, ChatSocket, ClientError, SocketSettings};
use tokio::sync::{watch, Semaphore};

use crate::{
    nodes::{Nodes, Placement},
    stats::Totals,
    turn::{self, TurnContext},
    watcher,
};

/// What one run does.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The servers; sockets are spread over them round-robin.
    pub nodes: Arc<Nodes>,
    pub sockets: usize,
    pub sockets_per_user: usize,
    pub connect_rate: u32,
    pub turns: usize,
    pub turn_concurrency: usize,
    /// Turns per second offered at random (Poisson) instead of back to back.
    pub rate: Option<f64>,
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
    /// The node kill, once it happened.
    pub kill: OnceLock<Kill>,
}

/// A node the bench killed mid-run.
#[derive(Debug, Clone, Copy)]
pub struct Kill {
    pub at: Instant,
}

impl Shared {
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            totals: Mutex::new(Totals::default()),
            open_now: AtomicU64::new(0),
            settled: AtomicU64::new(0),
            finished: AtomicU64::new(0),
            kill: OnceLock::new(),
        })
    }

    pub fn totals(&self) -> std::sync::MutexGuard<'_, Totals> {
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
    for user in 0..users {
        let client = client.clone();
        // Any node signs a token good on every node of a cluster.
        let base = plan.nodes.url(user).to_owned();
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

/// Spawn one task per socket, opened at `connect_rate` per second. Returns
/// the turns' slots: at most `turn_concurrency` at once, or with a `rate`
/// none until [`offer_turns`] adds them.
pub async fn start_sockets(
    plan: Arc<Plan>,
    tokens: Vec<String>,
    shared: Arc<Shared>,
    phase: watch::Receiver<Phase>,
) -> Arc<Semaphore> {
    let slots = match plan.rate {
        Some(_) => 0,
        None => plan.turn_concurrency.max(1),
    };
    let turn_slots = Arc::new(Semaphore::new(slots));
    let gap = Duration::from_secs_f64(1.0 / f64::from(plan.connect_rate.max(1)));
    let mut next = Instant::now();
    for index in 0..plan.sockets {
        let token = tokens[index / plan.sockets_per_user.max(1)].clone();
        tokio::spawn(socket_task(
            plan.clone(),
            index,
            token,
            shared.clone(),
            phase.clone(),
            turn_slots.clone(),
        ));
        next += gap;
        tokio::time::sleep_until(next.into()).await;
    }
    turn_slots
}

/// Release `turns` turns at `rate` per second, at exponentially distributed
/// gaps (a Poisson process): each goes to a socket that is free.
pub async fn offer_turns(turn_slots: Arc<Semaphore>, rate: f64, turns: usize) {
    let mut next = Instant::now();
    for _ in 0..turns {
        // Inverse transform: -ln(U) / rate, U in (0, 1].
        let uniform: f64 = 1.0 - rand::random::<f64>();
        next += Duration::from_secs_f64(-uniform.ln() / rate.max(f64::MIN_POSITIVE));
        tokio::time::sleep_until(next.into()).await;
        turn_slots.add_permits(1);
    }
}

pub async fn connect(settings: SocketSettings) -> Result<ChatSocket, ClientError> {
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

/// Socket number `index`: open it (and its watcher), run its turns, report.
async fn socket_task(
    plan: Arc<Plan>,
    index: usize,
    token: String,
    shared: Arc<Shared>,
    mut phase: watch::Receiver<Phase>,
    turn_slots: Arc<Semaphore>,
) {
    let place = Placement::new(plan.nodes.home(index), plan.nodes.watcher_home(index));
    let opened = open_pair(&plan, &token, &place, &shared).await;
    shared.settled.fetch_add(1, Ordering::Relaxed);
    let (mut socket, watcher) = match opened {
        Ok(opened) => opened,
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
    let (goal_tx, goal_rx) = watch::channel(None);
    let place = Arc::new(place);
    let watching = watcher.map(|socket| {
        tokio::spawn(watcher::watch(
            watcher::WatchContext {
                plan: plan.clone(),
                shared: shared.clone(),
                place: place.clone(),
            },
            socket,
            goal_rx,
        ))
    });
    let _ = phase.wait_for(|p| *p >= Phase::Turns).await;
    let context = TurnContext {
        plan: &plan,
        shared: &shared,
        place: &place,
    };
    for turn in 0..plan.turns {
        let Ok(slot) = turn_slots.acquire().await else {
            break;
        };
        // An offered turn is used up; a concurrency slot is given back.
        if plan.rate.is_some() {
            slot.forget();
        }
        turn::run_turn(&context, &mut socket, turn).await;
    }
    // Everything the conversation holds now, the watcher must see too.
    let _ = goal_tx.send(Some(socket.last_seq()));
    {
        let audit = socket.audit();
        let mut totals = shared.totals();
        totals.lost += audit.lost();
        totals.duplicated += audit.duplicates;
        totals.out_of_order += audit.out_of_order;
        totals.reconnects += u64::from(socket.reconnects());
    }
    if let Some(watching) = watching {
        let _ = watching.await;
    }
    shared.finished.fetch_add(1, Ordering::Relaxed);
    let _ = phase.wait_for(|p| *p >= Phase::Release).await;
    shared.open_now.fetch_sub(1, Ordering::Relaxed);
}

/// The sender's socket and, on a cluster, its conversation's watcher on
/// another node. A cluster's conversation is created over HTTP first so the
/// watcher can open it before its first message: a conversation not yet
/// stored exists only on the node whose socket made it up.
async fn open_pair(
    plan: &Plan,
    token: &str,
    place: &Placement,
    shared: &Shared,
) -> Result<(ChatSocket, Option<ChatSocket>), ClientError> {
    let home = plan
        .nodes
        .url(place.sender.load(Ordering::Relaxed))
        .to_owned();
    let mut settings = SocketSettings::new(&home, token);
    if !plan.nodes.is_cluster() {
        return Ok((connect(settings).await?, None));
    }
    let client = reqwest::Client::new();
    settings.conversation_id = Some(conversations::create_with(&client, &home, token).await?);
    let socket = connect(settings.clone()).await?;
    settings.base_url = plan
        .nodes
        .url(place.watcher.load(Ordering::Relaxed))
        .to_owned();
    match connect(settings).await {
        Ok(watcher) => {
            shared.totals().watchers.opened += 1;
            Ok((socket, Some(watcher)))
        }
        Err(error) => {
            tracing::warn!(%error, "watcher could not connect");
            shared.totals().watchers.connect_failures += 1;
            // The turns still run; the watcher's failure fails the verdict.
            Ok((socket, None))
        }
    }
}
