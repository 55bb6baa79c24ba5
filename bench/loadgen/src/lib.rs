//! Load generators for sluice's benchmark (`bench/run`). Two binaries share these pieces:
//! `http-load` (constant-rate JSON calls, latency measured from the intended send time so a
//! slow server cannot hide its queueing) and `sse-load` (many concurrent token streams, timing
//! every frame and checking none is lost or out of order), both on one thread (`tool`) over a
//! lean HTTP/1 client (`h1_client`).

pub mod h1_client;
pub mod latency;
pub mod request_spec;
pub mod sse_frames;
pub mod tool;
