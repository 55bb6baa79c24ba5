//! How a load tool runs: on one thread, its report printed as one JSON object on stdout.

use std::future::Future;

use serde::Serialize;

/// Runs `work` on a single-threaded runtime (inside a `LocalSet`, for `h1_client`'s tasks)
/// and prints its report, or its error on stderr with exit code 2. One thread: a load tool
/// shares the machine with what it measures, and a single-threaded runtime wakes no other
/// thread per call or per token.
pub fn run<R: Serialize>(name: &str, work: impl Future<Output = Result<R, String>>) {
    let outcome = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("starting the runtime: {e}"))
        .and_then(|runtime| tokio::task::LocalSet::new().block_on(&runtime, work));
    match outcome.and_then(|report| serde_json::to_string(&report).map_err(|e| e.to_string())) {
        Ok(json) => println!("{json}"),
        Err(message) => {
            eprintln!("{name}: {message}");
            std::process::exit(2);
        }
    }
}
