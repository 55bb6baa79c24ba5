//! Failures the mock injects on purpose, set by `POST /__mock/faults`.
//!
//! The settings say which failure, how often and on which routes; [`Faults::draw`] decides for
//! one call whether it fails, so each handler only has to act on the [`Fault`] it is given.
//!
//! What each mode does to an affected call:
//! - `error`: a 5xx (`status`, default 500) whose body leaks an internal-looking detail; for
//!   generate, the 202 is normal but the job publishes `failed` instead of completing.
//! - `hang`: no answer until the caller leaves; streams send their headers, then nothing.
//! - `slow`: the answer waits 10 × `MOCK_TOKEN_DELAY_MS` (or `slow_ms`), each token and each
//!   generation stage takes 10 × its delay (or its delay plus `slow_ms`). With a zero token
//!   delay only `slow_ms` slows anything down.
//! - `malformed`: JSON answers are not JSON; streams send a broken frame after the first token;
//!   generate publishes an unparsable message instead of completing.
//! - `drop_mid_stream`: bodies are cut half-way (the connection closes without the end);
//!   generate goes silent after the 50 % stage.

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use axum::http::StatusCode;
use serde::{Deserialize, Serialize};

/// The routes a fault can be limited to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum FaultRoute {
    /// `POST /api/ai/search/passages`
    Search,
    /// `POST /api/ai/generate` and the generation it starts
    Generate,
    /// `POST /api/ai/conversations/{id}/messages-stream`
    Stream,
    /// `POST /v1/chat/completions` and `GET /v1/models`
    Openai,
}

/// What goes wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum FaultMode {
    None,
    Error,
    Hang,
    Slow,
    Malformed,
    DropMidStream,
}

/// The body of `POST /__mock/faults`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FaultRequest {
    mode: FaultMode,
    #[serde(default = "always")]
    rate: f64,
    #[serde(default)]
    routes: Option<Vec<FaultRoute>>,
    #[serde(default)]
    slow_ms: Option<u64>,
    #[serde(default)]
    status: Option<u16>,
}

fn always() -> f64 {
    1.0
}

/// The validated fault settings, also what `GET /__mock/faults` shows.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct FaultSettings {
    mode: FaultMode,
    rate: f64,
    routes: Option<Vec<FaultRoute>>,
    slow_ms: Option<u64>,
    status: u16,
}

impl Default for FaultSettings {
    fn default() -> Self {
        Self {
            mode: FaultMode::None,
            rate: 1.0,
            routes: None,
            slow_ms: None,
            status: StatusCode::INTERNAL_SERVER_ERROR.as_u16(),
        }
    }
}

/// A rejected fault request: the field and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct InvalidFault {
    pub(crate) field: &'static str,
    pub(crate) message: &'static str,
}

impl TryFrom<FaultRequest> for FaultSettings {
    type Error = InvalidFault;

    fn try_from(request: FaultRequest) -> Result<Self, Self::Error> {
        if !(0.0..=1.0).contains(&request.rate) {
            return Err(InvalidFault {
                field: "rate",
                message: "must be between 0.0 and 1.0",
            });
        }
        let status = request.status.unwrap_or(500);
        if !(500..=599).contains(&status) {
            return Err(InvalidFault {
                field: "status",
                message: "must be a 5xx status",
            });
        }
        Ok(Self {
            mode: request.mode,
            rate: request.rate,
            routes: request.routes,
            slow_ms: request.slow_ms,
            status,
        })
    }
}

/// How much slower a slowed call is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Slowdown {
    /// Ten times the usual delay.
    TenTimes,
    /// The usual delay plus this much.
    Extra(Duration),
}

impl Slowdown {
    /// The delay a slowed step takes instead of `usual`.
    pub(crate) fn apply(self, usual: Duration) -> Duration {
        match self {
            Self::TenTimes => usual.saturating_mul(10),
            Self::Extra(extra) => usual.saturating_add(extra),
        }
    }
}

/// The failure drawn for one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fault {
    /// Answer with this 5xx status and an internal-looking detail.
    Error(StatusCode),
    /// Never answer (streams: headers, then nothing).
    Hang,
    /// Take longer for everything.
    Slow(Slowdown),
    /// Send invalid JSON or a broken stream frame.
    Malformed,
    /// End the body abruptly about half-way.
    DropMidStream,
}

/// The current fault settings, shared by all requests.
#[derive(Debug, Default)]
pub(crate) struct Faults {
    settings: Mutex<FaultSettings>,
}

impl Faults {
    /// Replaces the settings.
    pub(crate) fn set(&self, settings: FaultSettings) {
        *self.settings.lock().unwrap_or_else(PoisonError::into_inner) = settings;
    }

    /// The settings in force.
    pub(crate) fn current(&self) -> FaultSettings {
        self.settings
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Decides whether this call to `route` fails, and how.
    pub(crate) fn draw(&self, route: FaultRoute) -> Option<Fault> {
        let settings = self.current();
        let affected = settings
            .routes
            .as_ref()
            .is_none_or(|routes| routes.contains(&route));
        if !affected || settings.rate <= 0.0 || rand::random::<f64>() >= settings.rate {
            return None;
        }
        match settings.mode {
            FaultMode::None => None,
            FaultMode::Error => Some(Fault::Error(
                StatusCode::from_u16(settings.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            )),
            FaultMode::Hang => Some(Fault::Hang),
            FaultMode::Slow => Some(Fault::Slow(match settings.slow_ms {
                Some(ms) => Slowdown::Extra(Duration::from_millis(ms)),
                None => Slowdown::TenTimes,
            })),
            FaultMode::Malformed => Some(Fault::Malformed),
            FaultMode::DropMidStream => Some(Fault::DropMidStream),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn settings(json: &str) -> Result<FaultSettings, InvalidFault> {
        FaultSettings::try_from(serde_json::from_str::<FaultRequest>(json).unwrap())
    }

    #[test]
    fn rate_one_always_fails_and_rate_zero_never() {
        let faults = Faults::default();
        faults.set(settings(r#"{"mode":"error"}"#).unwrap());
        assert!((0..100).all(|_| faults.draw(FaultRoute::Search)
            == Some(Fault::Error(StatusCode::INTERNAL_SERVER_ERROR))));
        faults.set(settings(r#"{"mode":"error","rate":0.0}"#).unwrap());
        assert!((0..100).all(|_| faults.draw(FaultRoute::Search).is_none()));
    }

    #[test]
    fn routes_limit_the_fault() {
        let faults = Faults::default();
        faults.set(settings(r#"{"mode":"hang","routes":["stream"]}"#).unwrap());
        assert_eq!(faults.draw(FaultRoute::Stream), Some(Fault::Hang));
        assert_eq!(faults.draw(FaultRoute::Search), None);
    }

    #[test]
    fn slow_is_ten_times_or_the_extra_given() {
        let faults = Faults::default();
        faults.set(settings(r#"{"mode":"slow"}"#).unwrap());
        let Some(Fault::Slow(slow)) = faults.draw(FaultRoute::Openai) else {
            panic!("not slow")
        };
        assert_eq!(
            slow.apply(Duration::from_millis(20)),
            Duration::from_millis(200)
        );
        faults.set(settings(r#"{"mode":"slow","slow_ms":1000}"#).unwrap());
        let Some(Fault::Slow(slow)) = faults.draw(FaultRoute::Openai) else {
            panic!("not slow")
        };
        assert_eq!(
            slow.apply(Duration::from_millis(20)),
            Duration::from_millis(1020)
        );
    }

    #[test]
    fn out_of_range_values_are_rejected() {
        assert_eq!(
            settings(r#"{"mode":"error","rate":1.5}"#)
                .unwrap_err()
                .field,
            "rate"
        );
        assert_eq!(
            settings(r#"{"mode":"error","status":404}"#)
                .unwrap_err()
                .field,
            "status"
        );
        assert!(serde_json::from_str::<FaultRequest>(r#"{"mode":"explode"}"#).is_err());
        assert!(
            serde_json::from_str::<FaultRequest>(r#"{"mode":"error","routes":["nope"]}"#).is_err()
        );
    }
}
