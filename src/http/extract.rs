//! Extractors whose rejections are our problem+json errors, naming the offending field.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::error::{ApiError, ErrorCode};

/// JSON body extractor: 413 past the body limit, 400 `validation_failed` naming the field.
#[derive(Debug, Clone, Copy, Default)]
pub struct AppJson<T>(pub T);

impl<S, T> FromRequest<S> for AppJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let is_json = request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .map(|mime| {
                let mime = mime.trim();
                mime == "application/json" || mime.ends_with("+json")
            })
            .unwrap_or(false);
        let bytes = Bytes::from_request(request, state)
            .await
            .map_err(|rejection| {
                if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::new(
                        ErrorCode::PayloadTooLarge,
                        "request body is larger than 1 MiB",
                    )
                } else {
                    ApiError::validation("body", "could not read the request body")
                }
            })?;
        if !is_json {
            return Err(ApiError::validation(
                "body",
                "expected Content-Type: application/json",
            ));
        }
        parse_json(&bytes).map(AppJson)
    }
}

/// Deserializes JSON, turning serde's error into a field-naming validation error.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(&mut deserializer).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        let message = inner.to_string();
        if matches!(
            inner.classify(),
            serde_json::error::Category::Syntax | serde_json::error::Category::Eof
        ) {
            return ApiError::validation(
                "body",
                format!("malformed JSON: {}", strip_position(&message)),
            );
        }
        let field = if path.is_empty() || path == "." || path == "?" {
            missing_field(&message).unwrap_or_else(|| "body".to_string())
        } else {
            path
        };
        let message = strip_position(&message);
        ApiError::validation(&field, message)
    })
}

/// Query-string extractor with field-naming errors.
#[derive(Debug, Clone, Copy, Default)]
pub struct AppQuery<T>(pub T);

impl<S, T> FromRequestParts<S> for AppQuery<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or_default();
        let deserializer =
            serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize(deserializer)
            .map(AppQuery)
            .map_err(|err| {
                let path = err.path().to_string();
                let message = err.into_inner().to_string();
                let field = if path.is_empty() || path == "." {
                    missing_field(&message).unwrap_or_else(|| "query".to_string())
                } else {
                    path
                };
                ApiError::validation(&field, message)
            })
    }
}

/// Path extractor: a malformed id is a 400 naming the parameter.
#[derive(Debug, Clone, Copy, Default)]
pub struct AppPath<T>(pub T);

impl<S, T> FromRequestParts<S> for AppPath<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        use axum::extract::path::ErrorKind;
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(AppPath(value)),
            Err(rejection) => {
                let field = match rejection {
                    axum::extract::rejection::PathRejection::FailedToDeserializePathParams(e) => {
                        match e.into_kind() {
                            ErrorKind::ParseErrorAtKey { key, .. }
                            | ErrorKind::InvalidUtf8InPathParam { key } => key,
                            _ => "id".to_string(),
                        }
                    }
                    _ => "id".to_string(),
                };
                Err(ApiError::validation(&field, "is not a valid id"))
            }
        }
    }
}

fn missing_field(message: &str) -> Option<String> {
    let rest = message.strip_prefix("missing field `")?;
    rest.split('`').next().map(str::to_string)
}

fn strip_position(message: &str) -> String {
    match message.find(" at line ") {
        Some(idx) => message[..idx].to_string(),
        None => message.to_string(),
    }
}
