//! The demo frontend at `/`, and problem+json 404s for unknown API paths.

use axum::extract::{Request, State};
use axum::response::{Html, IntoResponse, Response};
use tower::ServiceExt;
use tower_http::services::{ServeDir, ServeFile};

use crate::app::AppState;
use crate::error::ApiError;

/// Fallback handler: API-looking paths get a problem 404; everything else is the built
/// single-page app (unknown paths get `index.html` so client-side routes work).
pub async fn serve(State(state): State<AppState>, request: Request) -> Response {
    let path = request.uri().path();
    if path.starts_with("/api/") || path.starts_with("/v1/") || path.starts_with("/health") {
        return ApiError::not_found("route").into_response();
    }
    let dir = &state.settings.frontend_dir;
    let index = dir.join("index.html");
    if !index.exists() {
        return Html(PLACEHOLDER).into_response();
    }
    let service = ServeDir::new(dir).fallback(ServeFile::new(index));
    match service.oneshot(request).await {
        Ok(response) => response.into_response(),
        Err(err) => ApiError::internal(err).into_response(),
    }
}

const PLACEHOLDER: &str = "<!doctype html><html><head><meta charset=\"utf-8\"><title>sluice</title></head>\
<body><h1>sluice is running</h1><p>The demo frontend has not been built. \
Run <code>scripts/run</code> from the repository root to build and serve it.</p></body></html>";
