//! `http-load`: repeats one HTTP call, either open-loop at a constant rate (`--rate`, latency
//! counted from when each request was due, so queueing in a saturated server shows instead of
//! being hidden by a waiting client) or closed-loop with `--connections` callers as fast as the
//! server answers (`--rate 0`, to find saturation). Prints one JSON object on stdout.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::Duration;

use clap::Parser;
use serde::Serialize;
use sluice_loadgen::h1_client::{Pool, PreparedRequests};
use sluice_loadgen::latency::{Samples, Summary};
use sluice_loadgen::request_spec::RequestSpec;
use tokio::time::Instant;

#[derive(Debug, Parser)]
#[command(about = "Constant-rate (or closed-loop) HTTP load; JSON summary on stdout")]
struct Args {
    /// Target URL.
    #[arg(long)]
    url: String,
    /// HTTP method.
    #[arg(long, default_value = "GET")]
    method: String,
    /// JSON body sent with every request.
    #[arg(long)]
    body: Option<String>,
    /// Extra header, `Name: value` (repeatable).
    #[arg(long = "header")]
    headers: Vec<String>,
    /// Bearer tokens, one a line, used in turn.
    #[arg(long)]
    tokens_file: Option<String>,
    /// Requests per second; 0 runs closed-loop with `--connections` callers.
    #[arg(long, default_value_t = 0.0)]
    rate: f64,
    /// Closed loop: concurrent callers. Open loop: most requests in flight before new ones
    /// are dropped (counted as `dropped`: the server could not keep up).
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// Seconds measured.
    #[arg(long, default_value_t = 10.0)]
    duration_secs: f64,
    /// Seconds run first and not measured.
    #[arg(long, default_value_t = 2.0)]
    warmup_secs: f64,
}

/// What every finished request adds to.
#[derive(Debug, Default)]
struct Tally {
    latency: Samples,
    ok: u64,
    errors: BTreeMap<String, u64>,
    first_measured: Option<Instant>,
    last_done: Option<Instant>,
    /// Per [`WINDOW`] of due time since the start: requests, how many took over [`SLOW`],
    /// and the slowest one. Tells a tail made by one stall from one spread over the run.
    windows: BTreeMap<u64, Window>,
    /// Where the windows are counted from: the first finished request's due time.
    origin: Option<Instant>,
}

/// The span a [`Window`] covers.
const WINDOW: Duration = Duration::from_millis(100);
/// A request slower than this counts as slow in its [`Window`].
const SLOW: Duration = Duration::from_millis(5);

/// Requests due within one [`WINDOW`].
#[derive(Debug, Default, Clone, Copy, Serialize)]
struct Window {
    /// Milliseconds from the first finished request's due time to the window's start.
    at_ms: u64,
    requests: u64,
    slow: u64,
    max_ms: f64,
}

impl Tally {
    fn add(&mut self, due: Instant, outcome: Result<(), String>) {
        let done = Instant::now();
        match outcome {
            Ok(()) => {
                self.ok += 1;
                self.latency.record(done - due);
            }
            Err(kind) => *self.errors.entry(kind).or_default() += 1,
        }
        let origin = *self.origin.get_or_insert(due);
        let index = (due.saturating_duration_since(origin).as_millis() / WINDOW.as_millis()) as u64;
        let window = self.windows.entry(index).or_default();
        window.requests += 1;
        window.slow += u64::from(done - due > SLOW);
        window.max_ms = window.max_ms.max((done - due).as_secs_f64() * 1e3);
        self.first_measured = Some(self.first_measured.map_or(due, |first| first.min(due)));
        self.last_done = Some(self.last_done.map_or(done, |last| last.max(done)));
    }
}

#[derive(Debug, Serialize)]
struct Report {
    mode: &'static str,
    target_rate: f64,
    connections: usize,
    duration_secs: f64,
    ok: u64,
    errors: BTreeMap<String, u64>,
    dropped: u64,
    throughput_rps: f64,
    latency: Summary,
    /// The windows with the most slow requests (at most [`WORST_WINDOWS`]), in time order.
    worst_windows: Vec<Window>,
}

/// How many windows [`Report::worst_windows`] lists.
const WORST_WINDOWS: usize = 10;

fn main() {
    sluice_loadgen::tool::run("http-load", run(Args::parse()));
}

async fn run(args: Args) -> Result<Report, String> {
    let spec = RequestSpec::from_args(
        &args.method,
        Some(&args.url),
        None,
        &args.headers,
        args.tokens_file.as_deref(),
        args.body.clone(),
    )?;
    let pool = Pool::new(PreparedRequests::new(&spec)?, args.connections);
    let tally = Rc::new(RefCell::new(Tally::default()));
    let warmup = Duration::from_secs_f64(args.warmup_secs);
    let measured = Duration::from_secs_f64(args.duration_secs);

    let (mode, dropped) = if args.rate > 0.0 {
        let dropped = open_loop(&args, &pool, &tally, warmup, measured).await;
        ("open", dropped)
    } else {
        closed_loop(&args, &pool, &tally, warmup, measured).await;
        ("closed", 0)
    };

    let tally = tally.take();
    let span = match (tally.first_measured, tally.last_done) {
        (Some(first), Some(last)) if last > first => (last - first).as_secs_f64(),
        _ => measured.as_secs_f64(),
    };
    let mut worst: Vec<Window> = tally
        .windows
        .iter()
        .filter(|(_, w)| w.slow > 0)
        .map(|(&index, w)| Window {
            at_ms: index * WINDOW.as_millis() as u64,
            ..*w
        })
        .collect();
    worst.sort_by_key(|w| std::cmp::Reverse(w.slow));
    worst.truncate(WORST_WINDOWS);
    worst.sort_by_key(|w| w.at_ms);
    Ok(Report {
        mode,
        worst_windows: worst,
        target_rate: args.rate,
        connections: args.connections,
        duration_secs: args.duration_secs,
        ok: tally.ok,
        throughput_rps: tally.ok as f64 / span,
        errors: tally.errors,
        dropped,
        latency: tally.latency.summary(),
    })
}

/// Sends request `i` at `start + i / rate`; returns how many were dropped because
/// `--connections` requests were already in flight.
async fn open_loop(
    args: &Args,
    pool: &Rc<Pool>,
    tally: &Rc<RefCell<Tally>>,
    warmup: Duration,
    measured: Duration,
) -> u64 {
    let interval = Duration::from_secs_f64(1.0 / args.rate);
    let start = Instant::now();
    let total = ((warmup + measured).as_secs_f64() * args.rate).ceil() as u64;
    let warm_count = (warmup.as_secs_f64() * args.rate).ceil() as u64;
    let mut dropped = 0;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..total {
        let due = start + interval.mul_f64(i as f64);
        tokio::time::sleep_until(due).await;
        let Some(lease) = pool.try_lease() else {
            if i >= warm_count {
                dropped += 1;
            }
            continue;
        };
        let pool = pool.clone();
        let tally = tally.clone();
        tasks.spawn_local(async move {
            let outcome = pool.call(lease, i as usize).await;
            if i >= warm_count {
                tally.borrow_mut().add(due, outcome);
            }
        });
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
    dropped
}

/// `--connections` callers, each sending its next request when the last one is answered.
async fn closed_loop(
    args: &Args,
    pool: &Rc<Pool>,
    tally: &Rc<RefCell<Tally>>,
    warmup: Duration,
    measured: Duration,
) {
    let start = Instant::now();
    let measure_from = start + warmup;
    let end = measure_from + measured;
    let mut callers = tokio::task::JoinSet::new();
    for caller in 0..args.connections.max(1) {
        let pool = pool.clone();
        let tally = tally.clone();
        callers.spawn_local(async move {
            let mut i = caller;
            loop {
                let due = Instant::now();
                if due >= end {
                    break;
                }
                // As many callers as connections: one is always free for this caller.
                let Some(lease) = pool.try_lease() else { break };
                let outcome = pool.call(lease, i).await;
                if due >= measure_from {
                    tally.borrow_mut().add(due, outcome);
                }
                i += 1;
            }
        });
    }
    while callers.join_next().await.is_some() {}
}
