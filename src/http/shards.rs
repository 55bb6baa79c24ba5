//! Event-loop threads that accept and serve connections: each runs a single-threaded tokio
//! runtime, and a connection lives on one of them for its whole life, with its requests, the
//! upstream calls they make (see [`crate::upstream::transport`]) and their answers.
//!
//! Why not the multi-threaded runtime for connections: its work stealing moves a request's
//! tasks (the client connection, the upstream connection) between workers, so every step of
//! a proxied call could wake another thread, and idle workers spin looking for work. Measured
//! on the passthrough (BENCHMARKS.md): ~9 % less CPU per call and ~13 % more calls at
//! saturation. This is the layout of nginx's and Envoy's workers: one event loop per core,
//! each accepting its share of new connections (`crate::http::server::Listeners`). What it
//! gives up is stealing: a thread the kernel preempts delays every connection on it, which
//! showed as later first tokens when 1,000 streams saturated cores shared with other
//! processes.
//!
//! Everything else (Redis, the progress fan-out, background jobs) stays on the main runtime;
//! tokio's channels, timers and sockets work across runtimes. Database statements run where
//! they are awaited: answer inserts are handed to the main runtime (`Store::on_home`), and
//! so are stream starts once the pool runs low (`Store::near_or_home`); a pooled connection
//! keeps the reactor of whichever runtime opened it.
//!
//! Each thread also keeps a [`PACEMAKER`] timer armed. tokio wakes its own event loop (an
//! `eventfd` write, then an extra `epoll_wait` turn) whenever a new timer is due before every
//! timer it knew of when it last went to sleep, which for an idle-between-requests loop is
//! every request's deadline: measured 0.3 such writes per proxied call at saturation and 0.7
//! at 5,000 calls/s. With a timer never more than a second away, deadlines of a second or
//! more (the edge's 30 s, the upstream call timeout) never come first, at the price of one
//! wake-up a second per idle thread.

use std::future::Future;
use std::num::NonZeroUsize;
use std::thread;
use std::time::Duration;

use tokio::runtime::{Builder, Handle};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

/// How far ahead each event-loop thread keeps a timer armed (see the module docs).
const PACEMAKER: Duration = Duration::from_secs(1);

/// The event-loop threads. Dropping it tells them to exit without waiting; [`Shards::stop`]
/// also waits until they have.
pub struct Shards {
    handles: Vec<Handle>,
    exit: CancellationToken,
    exited: Vec<oneshot::Receiver<()>>,
}

impl Shards {
    /// Starts `count` threads (`Settings::worker_threads`).
    pub fn start(count: NonZeroUsize) -> std::io::Result<Self> {
        let exit = CancellationToken::new();
        // Should a thread fail to start, the ones already running exit.
        let stop_started = exit.clone().drop_guard();
        let mut handles = Vec::with_capacity(count.get());
        let mut exited = Vec::with_capacity(count.get());
        for index in 0..count.get() {
            let runtime = Builder::new_current_thread().enable_all().build()?;
            handles.push(runtime.handle().clone());
            let (done, exited_rx) = oneshot::channel();
            exited.push(exited_rx);
            let exit = exit.clone();
            thread::Builder::new()
                .name(format!("sluice-shard-{index}"))
                .spawn(move || {
                    // Runs spawned connections until told to exit; the runtime (and any
                    // connection still on it) is dropped on this thread.
                    runtime.block_on(async {
                        tokio::select! {
                            () = exit.cancelled() => {}
                            () = pacemaker() => {}
                        }
                    });
                    drop(runtime);
                    let _ = done.send(());
                })?;
        }
        stop_started.disarm();
        Ok(Self {
            handles,
            exit,
            exited,
        })
    }

    /// How many threads there are.
    pub fn len(&self) -> usize {
        self.handles.len()
    }

    /// Always false: there is at least one thread.
    pub fn is_empty(&self) -> bool {
        self.handles.is_empty()
    }

    /// Runs `future` on thread `index` (counted modulo [`Shards::len`]).
    pub fn spawn_on<F>(&self, index: usize, future: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.handles[index % self.handles.len()].spawn(future)
    }

    /// Stops the threads (dropping whatever still runs on them) and waits until they have.
    pub async fn stop(mut self) {
        self.exit.cancel();
        for exited in std::mem::take(&mut self.exited) {
            let _ = exited.await;
        }
    }
}

/// Keeps a timer at most [`PACEMAKER`] ahead on the current runtime, forever.
async fn pacemaker() {
    let mut beat = tokio::time::interval(PACEMAKER);
    beat.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        beat.tick().await;
    }
}

impl Drop for Shards {
    fn drop(&mut self) {
        self.exit.cancel();
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    /// Sends `()` when dropped: tells that a future was dropped, wherever it ran.
    struct DropSignal(Option<std::sync::mpsc::Sender<()>>);

    impl Drop for DropSignal {
        fn drop(&mut self) {
            if let Some(tx) = self.0.take() {
                let _ = tx.send(());
            }
        }
    }

    #[tokio::test]
    async fn futures_run_on_the_thread_they_name() {
        let shards = Shards::start(NonZeroUsize::new(2).unwrap()).unwrap();
        let mut names = Vec::new();
        for index in [1, 0, 3] {
            let name =
                shards.spawn_on(index, async { thread::current().name().map(str::to_owned) });
            names.push(name.await.unwrap().unwrap());
        }
        assert_eq!(
            names,
            ["sluice-shard-1", "sluice-shard-0", "sluice-shard-1"]
        );
        shards.stop().await;
    }

    #[tokio::test]
    async fn stop_drops_what_still_runs_and_waits_for_the_threads() {
        let shards = Shards::start(NonZeroUsize::new(1).unwrap()).unwrap();
        let (tx, dropped) = std::sync::mpsc::channel();
        let (started_tx, started) = oneshot::channel();
        shards.spawn_on(0, async move {
            let _signal = DropSignal(Some(tx));
            let _ = started_tx.send(());
            std::future::pending::<()>().await;
        });
        started.await.unwrap();
        assert!(dropped.try_recv().is_err(), "still running before stop");
        shards.stop().await;
        assert!(
            dropped.try_recv().is_ok(),
            "the pending future was dropped by the time stop returned"
        );
    }
}
