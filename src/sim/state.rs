//! The state every handler of the mock shares.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::config::MockAiConfig;
use super::faults::Faults;
use super::hold::Hold;
use super::progress::Progress;
use super::request_log::RequestLog;
use super::stats::Stats;

/// Settings, test controls and background work of one running mock.
pub(crate) struct SimState {
    pub(crate) config: MockAiConfig,
    pub(crate) faults: Faults,
    pub(crate) stats: Arc<Stats>,
    pub(crate) hold: Hold,
    pub(crate) requests: RequestLog,
    pub(crate) progress: Progress,
    /// Cancelled on shutdown: hanging calls, held streams and generations stop waiting.
    pub(crate) shutdown: CancellationToken,
    /// Background generations, awaited (briefly) on shutdown.
    pub(crate) tasks: TaskTracker,
}

/// What handlers receive.
pub(crate) type SharedState = Arc<SimState>;

impl SimState {
    /// Sleeps `delay`, or less if the mock shuts down; returns `false` in that case.
    pub(crate) async fn pause(&self, delay: std::time::Duration) -> bool {
        tokio::select! {
            () = tokio::time::sleep(delay) => true,
            () = self.shutdown.cancelled() => false,
        }
    }
}
