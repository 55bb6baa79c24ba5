//! sluice: a backend-for-frontend gateway for AI apps.
//!
//! The crate is laid out by concern: `config` (typed settings), `app` and `router` (HTTP
//! wiring), `routes` (thin handlers), and one folder per piece of infrastructure (`auth`,
//! `limits`, `store`, `events`, `upstream`), each with an embedded default and a shared real
//! implementation behind one interface. `sim` is the simulated AI service (`sluice mock-ai`).

pub mod app;
pub mod auth;
pub mod cache;
pub mod config;
pub mod domain;
pub mod error;
pub mod events;
pub mod http;
pub mod idle_timer;
pub mod ids;
pub mod limits;
pub mod metrics;
pub mod openapi;
pub mod redis_link;
pub mod router;
pub mod routes;
pub mod sim;
pub mod store;
pub mod telemetry;
pub mod upstream;

pub use app::{AppState, Application, StartupError};
pub use config::Settings;
