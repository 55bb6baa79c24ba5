//! Starting and stopping the mock: in the background for tests and the embedded gateway, in the
//! foreground for `sluice mock-ai`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::config::MockAiConfig;
use super::error::SimError;
use super::faults::Faults;
use super::hold::Hold;
use super::progress::Progress;
use super::request_log::RequestLog;
use super::router::router;
use super::state::SimState;

/// Longest wait on shutdown for generations still delivering their last callback.
const BACKGROUND_GRACE: Duration = Duration::from_secs(5);

/// A running mock; dropping it does not stop it; `shutdown()` does.
#[derive(Debug)]
pub struct MockAiHandle {
    addr: SocketAddr,
    shutdown: CancellationToken,
    server: JoinHandle<()>,
    tasks: TaskTracker,
}

impl MockAiHandle {
    /// The address the mock listens on (the real port when bound to port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://addr`, ready to use as `AI_SERVICE_URL`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops accepting, ends hanging calls and open streams, and waits for the server to stop.
    pub async fn shutdown(self) {
        self.shutdown.cancel();
        if let Err(error) = self.server.await {
            tracing::warn!(%error, "mock-ai: server task ended abnormally");
        }
        self.tasks.close();
        if tokio::time::timeout(BACKGROUND_GRACE, self.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!("mock-ai: background generations still running after shutdown");
        }
    }
}

/// Binds `listener` (tests pass 127.0.0.1:0) and serves until shutdown.
pub async fn spawn(listener: TcpListener, config: MockAiConfig) -> Result<MockAiHandle, SimError> {
    let addr = listener.local_addr().map_err(SimError::LocalAddr)?;
    let shutdown = CancellationToken::new();
    let tasks = TaskTracker::new();
    let state = Arc::new(SimState {
        progress: Progress::new(&config)?,
        config,
        faults: Faults::default(),
        stats: Arc::default(),
        hold: Hold::default(),
        requests: RequestLog::default(),
        shutdown: shutdown.clone(),
        tasks: tasks.clone(),
    });
    let app = router(state);
    let stop = shutdown.clone();
    let server = tokio::spawn(async move {
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(async move { stop.cancelled().await })
            .await;
        if let Err(error) = served {
            tracing::error!(%error, "mock-ai: server failed");
        }
    });
    tracing::info!(%addr, "mock-ai: listening");
    Ok(MockAiHandle {
        addr,
        shutdown,
        server,
        tasks,
    })
}

/// Runs in the foreground until SIGINT/SIGTERM (for the `sluice mock-ai` command).
pub async fn run(config: MockAiConfig) -> Result<(), SimError> {
    let listener = listen(config.bind)?;
    let handle = spawn(listener, config).await?;
    stop_signal().await?;
    tracing::info!("mock-ai: shutting down");
    handle.shutdown().await;
    Ok(())
}

/// The mock's listener, with the gateway's accept queue ([`crate::http::server::bind`]): a
/// real AI service's server does not drop connections that arrive in a burst, so the mock
/// must not either (tokio's own bind queues only 128, and a gateway opening connections in
/// a burst would wait a second for every one past that).
pub fn listen(addr: SocketAddr) -> Result<TcpListener, SimError> {
    crate::http::server::bind(addr).map_err(|source| SimError::Bind { addr, source })
}

/// Resolves on the first SIGINT or SIGTERM.
async fn stop_signal() -> Result<(), SimError> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut terminate = signal(SignalKind::terminate()).map_err(SimError::Signal)?;
        tokio::select! {
            interrupted = tokio::signal::ctrl_c() => interrupted.map_err(SimError::Signal),
            _ = terminate.recv() => Ok(()),
        }
    }
    #[cfg(not(unix))]
    {
        tokio::signal::ctrl_c().await.map_err(SimError::Signal)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::http::server::connects_left_waiting;

    #[tokio::test]
    async fn the_mock_queues_a_burst_of_connections_as_a_real_service_does() {
        let listener = listen("127.0.0.1:0".parse().unwrap()).unwrap();
        let waiting = connects_left_waiting(listener.local_addr().unwrap(), 1_500).await;
        assert_eq!(waiting, 0, "connections left waiting for a SYN retransmit");
    }
}
