//! What reached the mock, for `GET /__mock/stats`: calls per route and the fate of every stream.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

/// The routes whose calls are counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Call {
    Search,
    Generate,
    Stream,
    ChatCompletions,
    Models,
}

/// Counters shared by all requests. Stream gauges (`open`, `held`) are kept by guards, so a
/// stream is accounted for however it ends, including when the caller goes away.
#[derive(Debug, Default)]
pub(crate) struct Stats {
    search: AtomicU64,
    generate: AtomicU64,
    stream: AtomicU64,
    chat_completions: AtomicU64,
    models: AtomicU64,
    streams_open: AtomicU64,
    streams_held: AtomicU64,
    streams_cancelled: AtomicU64,
    streams_completed: AtomicU64,
    streams_aborted: AtomicU64,
}

/// The JSON of `GET /__mock/stats`.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct StatsSnapshot {
    calls: CallCounts,
    streams_open: u64,
    streams_held: u64,
    streams_cancelled: u64,
    streams_completed: u64,
    streams_aborted: u64,
}

#[derive(Debug, Clone, Serialize)]
struct CallCounts {
    search: u64,
    generate: u64,
    stream: u64,
    chat_completions: u64,
    models: u64,
}

impl Stats {
    /// Counts one call that passed authentication.
    pub(crate) fn count(&self, call: Call) {
        let counter = match call {
            Call::Search => &self.search,
            Call::Generate => &self.generate,
            Call::Stream => &self.stream,
            Call::ChatCompletions => &self.chat_completions,
            Call::Models => &self.models,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Registers a stream that is about to be sent; the guard must live as long as its body.
    pub(crate) fn open_stream(self: &Arc<Self>) -> StreamGuard {
        self.streams_open.fetch_add(1, Ordering::SeqCst);
        StreamGuard {
            stats: Arc::clone(self),
            end: None,
        }
    }

    /// Registers a stream paused by `/__mock/hold` until the guard drops.
    pub(crate) fn held(self: &Arc<Self>) -> HeldGuard {
        self.streams_held.fetch_add(1, Ordering::SeqCst);
        HeldGuard {
            stats: Arc::clone(self),
        }
    }

    /// Zeroes the counters; live gauges (open and held streams) keep their value.
    pub(crate) fn reset(&self) {
        for counter in [
            &self.search,
            &self.generate,
            &self.stream,
            &self.chat_completions,
            &self.models,
            &self.streams_cancelled,
            &self.streams_completed,
            &self.streams_aborted,
        ] {
            counter.store(0, Ordering::SeqCst);
        }
    }

    /// The counters as they are now.
    pub(crate) fn snapshot(&self) -> StatsSnapshot {
        let read = |counter: &AtomicU64| counter.load(Ordering::SeqCst);
        StatsSnapshot {
            calls: CallCounts {
                search: read(&self.search),
                generate: read(&self.generate),
                stream: read(&self.stream),
                chat_completions: read(&self.chat_completions),
                models: read(&self.models),
            },
            streams_open: read(&self.streams_open),
            streams_held: read(&self.streams_held),
            streams_cancelled: read(&self.streams_cancelled),
            streams_completed: read(&self.streams_completed),
            streams_aborted: read(&self.streams_aborted),
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum StreamEnd {
    Completed,
    Aborted,
}

/// Travels with a stream body. Dropped without an end recorded, the caller went away first:
/// that is a cancelled stream.
#[derive(Debug)]
pub(crate) struct StreamGuard {
    stats: Arc<Stats>,
    end: Option<StreamEnd>,
}

impl StreamGuard {
    /// The stream sent everything, up to its final event.
    pub(crate) fn completed(&mut self) {
        self.end = Some(StreamEnd::Completed);
    }

    /// The mock itself cut the stream (an injected fault or shutdown).
    pub(crate) fn aborted(&mut self) {
        self.end = Some(StreamEnd::Aborted);
    }
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        let counter = match self.end {
            Some(StreamEnd::Completed) => &self.stats.streams_completed,
            Some(StreamEnd::Aborted) => &self.stats.streams_aborted,
            None => &self.stats.streams_cancelled,
        };
        counter.fetch_add(1, Ordering::SeqCst);
        self.stats.streams_open.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Counts a stream as held while it exists.
#[derive(Debug)]
pub(crate) struct HeldGuard {
    stats: Arc<Stats>,
}

impl Drop for HeldGuard {
    fn drop(&mut self) {
        self.stats.streams_held.fetch_sub(1, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn a_stream_dropped_without_an_end_is_cancelled() {
        let stats = Arc::new(Stats::default());
        let guard = stats.open_stream();
        assert_eq!(stats.snapshot().streams_open, 1);
        drop(guard);
        let snapshot = stats.snapshot();
        assert_eq!((snapshot.streams_open, snapshot.streams_cancelled), (0, 1));
    }

    #[test]
    fn completed_and_aborted_streams_are_not_cancelled() {
        let stats = Arc::new(Stats::default());
        stats.open_stream().completed();
        stats.open_stream().aborted();
        let snapshot = stats.snapshot();
        assert_eq!(snapshot.streams_completed, 1);
        assert_eq!(snapshot.streams_aborted, 1);
        assert_eq!(snapshot.streams_cancelled, 0);
    }

    #[test]
    fn reset_keeps_live_gauges() {
        let stats = Arc::new(Stats::default());
        stats.count(Call::Search);
        let _open = stats.open_stream();
        let _held = stats.held();
        stats.reset();
        let snapshot = stats.snapshot();
        assert_eq!(snapshot.calls.search, 0);
        assert_eq!((snapshot.streams_open, snapshot.streams_held), (1, 1));
    }
}
