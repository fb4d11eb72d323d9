//! Counters and latency histograms gathered across all sockets, and the report.

use std::{collections::BTreeMap, time::Duration};

use hdrhistogram::Histogram;

/// Everything the run measured.
pub struct Totals {
    pub sockets_opened: u64,
    pub connect_failures: u64,
    pub peak_held: u64,
    pub turns_started: u64,
    pub turns_completed: u64,
    pub turns_failed: u64,
    pub replies_mismatched: u64,
    pub events_expected: u64,
    pub events_received: u64,
    pub lost: u64,
    pub duplicated: u64,
    pub out_of_order: u64,
    pub chaos_drops: u64,
    pub unexpected_drops: u64,
    pub reconnects: u64,
    pub error_events: u64,
    /// Deltas after the first and the time they took, for tokens per second.
    pub generated_tokens: u64,
    pub generation_time: Duration,
    pub first_delta_us: Histogram<u64>,
    /// The first delta of each conversation's first turn, and of the turns
    /// after it (a model re-reading the history shows in the second).
    pub first_turn_first_delta_us: Histogram<u64>,
    pub follow_up_first_delta_us: Histogram<u64>,
    /// From sending a message to its `ack`: the message is committed first.
    pub ack_us: Histogram<u64>,
    pub final_us: Histogram<u64>,
    /// Sockets dropped because the bench killed their node, then resumed elsewhere.
    pub kill_drops: u64,
    /// Turns whose reply ended `interrupted` after the node kill.
    pub turns_interrupted: u64,
    /// Interrupted replies whose final text is not what their deltas carried.
    pub interrupted_mismatched: u64,
    /// From the kill to each interrupted final message.
    pub kill_to_interrupted_us: Histogram<u64>,
    /// Messages refused with a retryable error (a draining node, a lease
    /// still held by the killed node) and sent again.
    pub refusals_retried: u64,
    /// The conversations' watchers (cluster runs only).
    pub watchers: WatcherTotals,
    /// Why turns failed, and how often.
    pub failure_reasons: BTreeMap<&'static str, u64>,
    /// The codes of the error events, and how often.
    pub error_codes: BTreeMap<String, u64>,
    /// Descriptions of the first turns with lost, duplicated or reordered events.
    pub anomalies: Vec<String>,
}

/// What the watcher sockets saw: one per conversation, on another node
/// than its sender, each expected to see every event of every turn.
#[derive(Debug, Default)]
pub struct WatcherTotals {
    pub opened: u64,
    pub connect_failures: u64,
    /// Events with a `seq` the senders' conversations had at the end.
    pub events_expected: u64,
    pub events_received: u64,
    pub lost: u64,
    pub duplicated: u64,
    pub out_of_order: u64,
    /// Final messages seen, and those whose text was not their deltas (or
    /// not the expected reply, for one that completed).
    pub replies_seen: u64,
    pub replies_mismatched: u64,
    pub replies_interrupted: u64,
    /// Watchers that gave up before seeing their conversation's last event.
    pub incomplete: u64,
    pub kill_drops: u64,
    pub unexpected_drops: u64,
    pub reconnects: u64,
}

impl WatcherTotals {
    pub fn clean(&self) -> bool {
        self.connect_failures == 0
            && self.lost == 0
            && self.duplicated == 0
            && self.out_of_order == 0
            && self.replies_mismatched == 0
            && self.incomplete == 0
            && self.unexpected_drops == 0
            && self.events_received == self.events_expected
    }
}

impl Default for Totals {
    fn default() -> Self {
        let histogram = || {
            Histogram::new_with_bounds(1, 600_000_000, 3)
                .expect("constant histogram bounds are valid")
        };
        Self {
            sockets_opened: 0,
            connect_failures: 0,
            peak_held: 0,
            turns_started: 0,
            turns_completed: 0,
            turns_failed: 0,
            replies_mismatched: 0,
            events_expected: 0,
            events_received: 0,
            lost: 0,
            duplicated: 0,
            out_of_order: 0,
            chaos_drops: 0,
            unexpected_drops: 0,
            reconnects: 0,
            error_events: 0,
            generated_tokens: 0,
            generation_time: Duration::ZERO,
            first_delta_us: histogram(),
            first_turn_first_delta_us: histogram(),
            follow_up_first_delta_us: histogram(),
            ack_us: histogram(),
            final_us: histogram(),
            kill_drops: 0,
            turns_interrupted: 0,
            interrupted_mismatched: 0,
            kill_to_interrupted_us: histogram(),
            refusals_retried: 0,
            watchers: WatcherTotals::default(),
            failure_reasons: BTreeMap::new(),
            error_codes: BTreeMap::new(),
            anomalies: Vec::new(),
        }
    }
}

/// Memory and CPU figures read from the server processes.
#[derive(Default)]
pub struct ServerUsage {
    pub before_sockets: Option<u64>,
    pub sockets_idle: Option<u64>,
    pub peak: Option<u64>,
    /// CPU time (user + system) the servers spent from the release of the
    /// turns until the last one ended: the cost of the turns alone.
    pub turns_cpu: Option<Duration>,
}

fn ms(histogram: &Histogram<u64>, quantile: f64) -> f64 {
    histogram.value_at_quantile(quantile) as f64 / 1000.0
}

fn mib(bytes: Option<u64>) -> String {
    bytes.map_or("n/a".into(), |b| format!("{:.1} MiB", b as f64 / 1048576.0))
}

/// Print the report; `upstream_first_token` is the fake upstream's own delay
/// before its first token (`None` with a real model).
pub fn report(
    totals: &Totals,
    usage: &ServerUsage,
    sockets: u64,
    upstream_first_token: Option<Duration>,
    elapsed: Duration,
) {
    println!("colloquy-bench results ({:.1} s)", elapsed.as_secs_f64());
    println!("  sockets requested        {sockets}");
    println!(
        "  sockets opened           {} ({} failed to connect)",
        totals.sockets_opened, totals.connect_failures
    );
    println!("  connections held (peak)  {}", totals.peak_held);
    println!(
        "  turns completed          {} of {} ({} failed, {} replies mismatched)",
        totals.turns_completed,
        totals.turns_started,
        totals.turns_failed,
        totals.replies_mismatched
    );
    println!(
        "  events expected/received {} / {}",
        totals.events_expected, totals.events_received
    );
    println!("  lost                     {}", totals.lost);
    println!("  duplicated               {}", totals.duplicated);
    println!("  out of order             {}", totals.out_of_order);
    println!("  error events             {}", totals.error_events);
    for (code, count) in &totals.error_codes {
        println!("    {code:<22} {count}");
    }
    println!(
        "  chaos drops / reconnects {} / {}",
        totals.chaos_drops, totals.reconnects
    );
    println!("  unexpected drops         {}", totals.unexpected_drops);
    for (why, count) in &totals.failure_reasons {
        println!("  turns failed: {why:<18} {count}");
    }
    if !totals.ack_us.is_empty() {
        println!(
            "  time to ack (stored)     p50 {:.2} ms   p99 {:.2} ms",
            ms(&totals.ack_us, 0.50),
            ms(&totals.ack_us, 0.99)
        );
    }
    if !totals.first_delta_us.is_empty() {
        let p50 = ms(&totals.first_delta_us, 0.50);
        let p99 = ms(&totals.first_delta_us, 0.99);
        println!("  time to first delta      p50 {p50:.2} ms   p99 {p99:.2} ms");
        let (first, follow_up) = (
            &totals.first_turn_first_delta_us,
            &totals.follow_up_first_delta_us,
        );
        if !first.is_empty() && !follow_up.is_empty() {
            println!(
                "    first turns            p50 {:.2} ms   p99 {:.2} ms",
                ms(first, 0.50),
                ms(first, 0.99)
            );
            println!(
                "    follow-up turns        p50 {:.2} ms   p99 {:.2} ms",
                ms(follow_up, 0.50),
                ms(follow_up, 0.99)
            );
        }
        if let Some(delay) = upstream_first_token {
            let first_token_ms = delay.as_secs_f64() * 1000.0;
            println!(
                "  gateway overhead         p50 {:.2} ms   p99 {:.2} ms   (first delta minus the upstream's {first_token_ms:.1} ms first-token delay)",
                p50 - first_token_ms,
                p99 - first_token_ms
            );
        }
        println!(
            "  time to final            p50 {:.2} ms   p99 {:.2} ms",
            ms(&totals.final_us, 0.50),
            ms(&totals.final_us, 0.99)
        );
    }
    let generating = totals.generation_time.as_secs_f64();
    if generating > 0.0 {
        let per_reply = totals.generated_tokens as f64 / generating;
        println!(
            "  tokens/s per reply        {per_reply:.1} (deltas after the first, over their time)"
        );
    }
    println!("  server RSS before sockets {}", mib(usage.before_sockets));
    println!("  server RSS sockets idle   {}", mib(usage.sockets_idle));
    println!("  server RSS peak           {}", mib(usage.peak));
    if let (Some(before), Some(idle)) = (usage.before_sockets, usage.sockets_idle) {
        if totals.sockets_opened > 0 {
            let per_socket = idle.saturating_sub(before) as f64 / totals.sockets_opened as f64;
            println!("  memory per idle socket    {:.1} KiB", per_socket / 1024.0);
        }
    }
    if let Some(cpu) = usage.turns_cpu {
        let turns = totals.turns_completed.max(1) as f64;
        println!(
            "  server CPU per turn       {:.3} ms ({:.2} s over {} turns)",
            cpu.as_secs_f64() * 1000.0 / turns,
            cpu.as_secs_f64(),
            totals.turns_completed
        );
    }
    report_cluster(totals);
    for anomaly in &totals.anomalies {
        println!("  anomaly: {anomaly}");
    }
    let clean = totals.clean();
    println!(
        "  verdict                  {}",
        if clean {
            "PASS: nothing lost, duplicated or reordered"
        } else {
            "FAIL"
        }
    );
}

/// The watcher and node-kill lines: printed only when the run had them,
/// so a single-node report reads as before.
fn report_cluster(totals: &Totals) {
    let w = &totals.watchers;
    if w.opened + w.connect_failures > 0 {
        println!(
            "  watchers opened          {} ({} failed to connect)",
            w.opened, w.connect_failures
        );
        println!(
            "  watcher events exp/recv  {} / {}",
            w.events_expected, w.events_received
        );
        println!(
            "  watcher lost/dup/order   {} / {} / {}",
            w.lost, w.duplicated, w.out_of_order
        );
        println!(
            "  watcher replies seen     {} ({} mismatched, {} interrupted, {} watchers incomplete)",
            w.replies_seen, w.replies_mismatched, w.replies_interrupted, w.incomplete
        );
        println!(
            "  watcher drops kill/other {} / {} ({} reconnects)",
            w.kill_drops, w.unexpected_drops, w.reconnects
        );
    }
    if totals.refusals_retried > 0 {
        println!("  refusals retried         {}", totals.refusals_retried);
    }
    if totals.kill_drops + totals.turns_interrupted + w.kill_drops > 0 {
        println!("  sockets dropped by kill  {}", totals.kill_drops);
        println!(
            "  interrupted by the kill  {} ({} with a final text other than their deltas)",
            totals.turns_interrupted, totals.interrupted_mismatched
        );
    }
    if !totals.kill_to_interrupted_us.is_empty() {
        let h = &totals.kill_to_interrupted_us;
        println!(
            "  kill to interrupted final min {:.0} ms   p50 {:.0} ms   max {:.0} ms",
            h.min() as f64 / 1000.0,
            ms(h, 0.50),
            h.max() as f64 / 1000.0
        );
    }
}

impl Totals {
    pub fn record(&mut self, histogram: Which, value: Duration) {
        let micros = value.as_micros().clamp(1, 600_000_000) as u64;
        let target = match histogram {
            Which::FirstDelta => &mut self.first_delta_us,
            Which::FirstTurnFirstDelta => &mut self.first_turn_first_delta_us,
            Which::FollowUpFirstDelta => &mut self.follow_up_first_delta_us,
            Which::Ack => &mut self.ack_us,
            Which::Final => &mut self.final_us,
            Which::KillToInterrupted => &mut self.kill_to_interrupted_us,
        };
        let _ = target.record(micros);
    }

    pub fn clean(&self) -> bool {
        self.lost == 0
            && self.duplicated == 0
            && self.out_of_order == 0
            && self.unexpected_drops == 0
            && self.replies_mismatched == 0
            && self.turns_failed == 0
            && self.connect_failures == 0
            && self.interrupted_mismatched == 0
            && self.watchers.clean()
    }
}

/// Which latency a sample belongs to.
pub enum Which {
    FirstDelta,
    FirstTurnFirstDelta,
    FollowUpFirstDelta,
    Ack,
    Final,
    KillToInterrupted,
}
