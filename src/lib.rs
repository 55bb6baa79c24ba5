//! sluice: a backend-for-frontend gateway for AI apps.
//!
//! The crate is laid out by concern: `config` (typed settings), `app` and `router` (HTTP
//! wiring), `routes` (thin handlers), `domain` (logic without HTTP types), and one folder per
//! piece of infrastructure (`auth`, `limits`, `store`, `events`, `upstream`), each with an
//! embedded default and a shared real implementation behind one interface. `sim` is the
//! simulated AI service (`sluice mock-ai`).

pub mod events;
pub mod sim;
pub mod upstream;
