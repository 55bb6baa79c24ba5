//! Load generators for sluice's benchmark (`bench/run`). Two binaries share these pieces:
//! `http-load` (constant-rate JSON calls, latency measured from the intended send time so a
//! slow server cannot hide its queueing; on its own lean client, `h1_client`) and `sse-load`
//! (many concurrent token streams, timing every frame and checking none is lost or out of
//! order).

pub mod h1_client;
pub mod latency;
pub mod request_spec;
pub mod sse_frames;
pub mod tool;
