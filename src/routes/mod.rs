//! Thin handlers: extract, call the domain, map the result. No SQL, no business rules.

pub mod auth;
pub mod chat;
pub mod conversations;
pub mod frontend;
pub mod health;
pub mod internal;
pub mod me;
pub mod openai;
pub mod passthrough;
pub mod scenarios;

/// Milliseconds since the epoch as RFC 3339 (the API's time format).
pub fn rfc3339(millis: i64) -> String {
    let nanos = i128::from(millis) * 1_000_000;
    time::OffsetDateTime::from_unix_timestamp_nanos(nanos)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}
