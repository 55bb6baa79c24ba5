//! Request bodies of the AI routes, rejected the way a FastAPI service does: 422 with
//! `{"detail":[{"loc","msg","type"}]}`. A 4xx like this is the caller's fault, and the gateway
//! must not count it against the service's health.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde_json::json;

/// A request body the AI service cannot process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Unprocessable {
    field: String,
    message: String,
}

impl Unprocessable {
    /// `field` (as named in the request) is missing or wrong.
    pub(crate) fn new(field: &str, message: &str) -> Self {
        Self {
            field: field.to_owned(),
            message: message.to_owned(),
        }
    }
}

impl IntoResponse for Unprocessable {
    fn into_response(self) -> Response {
        let mut loc = vec!["body".to_owned()];
        loc.extend(
            self.field
                .split('.')
                .filter(|part| !part.is_empty())
                .map(str::to_owned),
        );
        let body = json!({
            "detail": [{ "loc": loc, "msg": self.message, "type": "value_error" }],
        });
        (StatusCode::UNPROCESSABLE_ENTITY, Json(body)).into_response()
    }
}

/// Parses a JSON body, naming the offending field when it does not fit `T`.
pub(crate) fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, Unprocessable> {
    let deserializer = &mut serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(deserializer).map_err(|error| {
        let path = error.path().to_string();
        let field = if path == "." { String::new() } else { path };
        Unprocessable {
            field,
            message: error.into_inner().to_string(),
        }
    })
}

/// Rejects an empty (or blank) required string.
pub(crate) fn required<'a>(field: &str, value: &'a str) -> Result<&'a str, Unprocessable> {
    if value.trim().is_empty() {
        Err(Unprocessable::new(field, "field required"))
    } else {
        Ok(value)
    }
}

/// Accepts ids that are safe as one URL path segment (the mock builds callback URLs from them).
pub(crate) fn path_safe_id<'a>(field: &str, value: &'a str) -> Result<&'a str, Unprocessable> {
    let valid = (1..=128).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && value != "."
        && value != "..";
    if valid {
        Ok(value)
    } else {
        Err(Unprocessable::new(
            field,
            "expected 1 to 128 letters, digits, '-', '_' or '.'",
        ))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Deserialize)]
    struct Body {
        #[allow(dead_code)]
        query: String,
    }

    #[test]
    fn a_missing_field_is_named() {
        let err = parse::<Body>(b"{}").unwrap_err();
        assert!(err.message.contains("query"), "{err:?}");
        let err = parse::<Body>(br#"{"query": 3}"#).unwrap_err();
        assert_eq!(err.field, "query");
    }

    #[test]
    fn ids_must_be_path_safe() {
        assert!(path_safe_id("id", "0190a1b2-c3d4").is_ok());
        for bad in ["", "..", "a/b", "a?b", "a b"] {
            assert!(path_safe_id("id", bad).is_err(), "{bad}");
        }
    }
}
