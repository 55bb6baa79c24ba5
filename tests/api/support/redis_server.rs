//! A private `redis-server` for tests that break Redis on purpose (kill connections, restart
//! it): the shared server on 6379 is used by other tests in parallel and must stay untouched.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tokio::time::{Instant, sleep, timeout};

/// A `redis-server` process on a free loopback port, killed when dropped.
pub struct RedisServer {
    port: u16,
    child: Option<Child>,
}

impl RedisServer {
    /// Starts a server on a free port and returns once it answers PING.
    pub async fn start() -> RedisServer {
        for _ in 0..5 {
            let port = free_port();
            if let Some(child) = spawn_ready(port).await {
                return RedisServer {
                    port,
                    child: Some(child),
                };
            }
        }
        panic!("could not start a private redis-server");
    }

    /// `redis://127.0.0.1:{port}`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// The port; the same across restarts.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Kills the server (SIGKILL: no goodbye to its clients); idempotent.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Kills the server if it runs and starts a fresh, empty one on the same port.
    pub async fn restart(&mut self) {
        self.kill();
        // The port is free again at once, but retry in case the kernel is slow to release it.
        for _ in 0..20 {
            if let Some(child) = spawn_ready(self.port).await {
                self.child = Some(child);
                return;
            }
            sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "could not restart the private redis-server on port {}",
            self.port
        );
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("a free loopback port")
}

/// Spawns `redis-server` on `port` and waits until it answers as itself; `None` when it exits
/// (port taken) or never answers.
async fn spawn_ready(port: u16) -> Option<Child> {
    let mut child = Command::new("redis-server")
        .args(["--port", &port.to_string()])
        .args(["--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("redis-server is installed");
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if matches!(child.try_wait(), Ok(Some(_))) {
            return None;
        }
        if served_by(port, child.id()).await {
            return Some(child);
        }
        // The process gives no readiness signal; poll its port.
        sleep(Duration::from_millis(10)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

/// Whether the server on `port` answers and is the process `pid` (not someone else's server
/// that took the port first).
async fn served_by(port: u16, pid: u32) -> bool {
    let probe = async {
        let client = redis::Client::open(format!("redis://127.0.0.1:{port}")).ok()?;
        let mut connection = client.get_multiplexed_async_connection().await.ok()?;
        let info: String = redis::cmd("INFO")
            .arg("server")
            .query_async(&mut connection)
            .await
            .ok()?;
        Some(
            info.lines()
                .any(|line| line.trim() == format!("process_id:{pid}")),
        )
    };
    matches!(timeout(Duration::from_secs(1), probe).await, Ok(Some(true)))
}
