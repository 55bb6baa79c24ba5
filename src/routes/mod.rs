//! Thin handlers: extract, call the domain, map the result. No SQL, no business rules.

pub mod auth;
pub mod frontend;
pub mod health;
pub mod me;
