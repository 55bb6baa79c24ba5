//! HTTP plumbing shared by all routes: middleware, extractors, the request id.

pub mod bearer;
pub mod call_context;
pub mod client_ip;
pub mod compression;
pub mod extract;
pub mod metrics_layer;
pub mod middleware;
pub mod rate_limit;
pub mod request_id;
pub mod server;
pub mod shards;
pub mod sse;
pub mod stack;
pub mod user_gate;
mod woken_only;
