//! One `run`: start or reach the servers, make the users, open the
//! sockets, release the turns (and the node kill, if asked), wait for every
//! socket, report, and stop what was started.

use std::{
    sync::{atomic::Ordering, Arc},
    time::{Duration, Instant},
};

use anyhow::bail;
use tokio::sync::watch;

use crate::{
    launch::Launched,
    nodes::Nodes,
    run::{self, Kill, Phase, Plan, Shared},
    server::{self, StopSignal},
    stats::{self, ServerUsage},
    RunArgs,
};

pub async fn run(args: RunArgs) -> anyhow::Result<bool> {
    if args.nodes.is_some_and(|nodes| !(1..=32).contains(&nodes)) {
        bail!("--nodes must be 1 to 32");
    }
    if args.kill_node.is_some() && args.nodes.unwrap_or(0) < 2 {
        bail!("--kill-node needs --nodes 2 or more: the sockets must have somewhere to go");
    }
    let launched = Launched::start(&args).await?;
    let result = drive(&args, &launched).await;
    launched.stop().await;
    result
}

/// The run proper, on servers that are up.
async fn drive(args: &RunArgs, launched: &Launched) -> anyhow::Result<bool> {
    let shape = args.shape.shape();
    let nodes = Arc::new(Nodes::new(launched.urls()));
    let plan = Arc::new(Plan {
        nodes: nodes.clone(),
        sockets: args.sockets,
        sockets_per_user: args.sockets_per_user.max(1),
        connect_rate: args.connect_rate,
        turns: args.turns,
        turn_concurrency: args.turn_concurrency,
        rate: args.rate,
        chaos: args.chaos,
        expected: args
            .local_model
            .is_none()
            .then(|| (shape.expected_reply(), shape.tokens)),
    });
    let pids = launched.pids();
    // The servers' memory together (a killed node's is gone from the sum).
    let rss = || {
        let sizes: Vec<u64> = pids
            .iter()
            .filter_map(|&pid| server::rss_bytes(pid))
            .collect();
        (!sizes.is_empty()).then(|| sizes.iter().sum())
    };
    let cpu = || {
        let times: Vec<Duration> = pids
            .iter()
            .filter_map(|&pid| server::cpu_time(pid))
            .collect();
        (!times.is_empty()).then(|| times.iter().sum::<Duration>())
    };
    let mut usage = ServerUsage {
        before_sockets: rss(),
        ..ServerUsage::default()
    };
    let started = Instant::now();
    eprintln!(
        "creating {} users",
        plan.sockets.div_ceil(plan.sockets_per_user)
    );
    let tokens = run::make_users(&plan).await?;
    let shared = Shared::new();
    let (phase_tx, phase_rx) = watch::channel(Phase::Connect);
    eprintln!(
        "opening {} sockets at {}/s over {} server(s){}",
        plan.sockets,
        plan.connect_rate,
        nodes.len(),
        if nodes.is_cluster() {
            ", each conversation with a watcher on another node"
        } else {
            ""
        }
    );
    let turn_slots = run::start_sockets(plan.clone(), tokens, shared.clone(), phase_rx).await;
    wait_until(|| shared.settled.load(Ordering::Relaxed) as usize >= plan.sockets).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    usage.sockets_idle = rss();
    usage.peak = usage.sockets_idle;
    eprintln!(
        "{} sockets open; running {} turn(s) each",
        shared.open_now.load(Ordering::Relaxed),
        plan.turns
    );
    let cpu_at_turns = cpu();
    let _ = phase_tx.send(Phase::Turns);
    if let Some(rate) = plan.rate {
        eprintln!("offering {rate} turns/s at random (Poisson) over the sockets");
        tokio::spawn(run::offer_turns(
            turn_slots,
            rate,
            plan.sockets * plan.turns,
        ));
    }
    if let Some(signal) = args.kill_node {
        tokio::time::sleep(Duration::from_millis(args.kill_after_ms)).await;
        kill_node(launched, &nodes, &shared, signal)?;
    }
    while (shared.finished.load(Ordering::Relaxed) as usize) < plan.sockets {
        tokio::time::sleep(Duration::from_millis(200)).await;
        usage.peak = usage.peak.max(rss());
    }
    usage.turns_cpu = cpu()
        .zip(cpu_at_turns)
        .map(|(after, before)| after.saturating_sub(before));
    {
        let mut totals = shared.totals();
        let held = shared.open_now.load(Ordering::Relaxed);
        totals.peak_held = totals.peak_held.max(held);
    }
    let _ = phase_tx.send(Phase::Release);
    let totals = shared.totals();
    stats::report(
        &totals,
        &usage,
        plan.sockets as u64,
        args.local_model.is_none().then_some(shape.interval),
        started.elapsed(),
    );
    // Interrupted replies are the expected outcome of a crash only: a node
    // stopped with SIGTERM must finish every reply.
    let interrupted_ok = args.kill_node == Some(StopSignal::Sigkill);
    let turns_ended = totals.turns_completed
        + if interrupted_ok {
            totals.turns_interrupted
        } else {
            0
        };
    Ok(totals.clean() && turns_ended as usize == plan.sockets * plan.turns)
}

/// Kill the last node: marked down first, so no socket picks it again and
/// every drop from it counts as caused by the kill.
fn kill_node(
    launched: &Launched,
    nodes: &Nodes,
    shared: &Shared,
    signal: StopSignal,
) -> anyhow::Result<()> {
    let node = nodes.len() - 1;
    nodes.mark_down(node);
    let at = Instant::now();
    let _ = shared.kill.set(Kill { at });
    launched.kill(node, signal)?;
    eprintln!("killed node {} ({signal:?})", node + 1);
    Ok(())
}

async fn wait_until(done: impl Fn() -> bool) {
    while !done() {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
