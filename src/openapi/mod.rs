//! The OpenAPI document, generated from the handlers' annotations and the body types, so
//! it cannot drift from the code. Served at `/openapi.json`; checked in as
//! `openapi/openapi.yaml` (a test fails when the two differ).

mod schemas;

use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

pub use schemas::{ChatCompletionRequest, Problem, ProgressReport};

use crate::routes;

/// The document's root.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "sluice",
        description = "Backend-for-frontend gateway for AI apps: JWT auth, rate limits, circuit breakers, SSE relay of AI tokens and generation progress."
    ),
    paths(
        routes::health::health,
        routes::health::liveness,
        routes::health::readiness,
        routes::health::metrics,
        openapi_json,
        routes::auth::dev_login,
        routes::auth::logout,
        routes::me::me,
        routes::scenarios::create,
        routes::scenarios::list,
        routes::scenarios::get,
        routes::passthrough::forward_ai,
        routes::passthrough::forward_search,
        routes::conversations::create,
        routes::conversations::list,
        routes::conversations::create_stream,
        routes::conversations::get,
        routes::conversations::status,
        routes::conversations::events,
        routes::chat::send,
        routes::chat::send_via_query,
        routes::chat::list,
        routes::openai::chat_completions,
        routes::openai::models,
        routes::internal::events,
        routes::internal::complete,
        routes::internal::failed,
    ),
    components(schemas(
        Problem,
        schemas::FieldErrorDoc,
        schemas::TokenEvent,
        schemas::MessageCompleteEvent,
        schemas::StreamErrorEvent,
        schemas::ProgressEvent,
        schemas::ConversationCompleteEvent,
        schemas::ConversationErrorEvent,
        ProgressReport,
    )),
    modifiers(&Security),
    tags(
        (name = "operations", description = "Health, readiness, metrics"),
        (name = "auth", description = "Identity"),
        (name = "scenarios", description = "Scenarios and passage search"),
        (name = "passthrough", description = "Forwarded to the AI service"),
        (name = "chat", description = "Messages, answered token by token over SSE"),
        (name = "conversations", description = "Conversations and their generation progress over SSE"),
        (name = "openai", description = "OpenAI-compatible API with fallbacks"),
        (name = "internal", description = "Callbacks from the AI service (AI_API_KEY)"),
    )
)]
pub struct ApiDoc;

struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
        components.add_security_scheme(
            "cookie",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::new("sluice_token"))),
        );
        components.add_security_scheme(
            "ai_api_key",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The generated document.
pub fn document() -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    doc.info.version = env!("CARGO_PKG_VERSION").to_string();
    doc
}

/// The document as YAML (the checked-in form).
pub fn yaml() -> Result<String, String> {
    document().to_yaml().map_err(|e| e.to_string())
}

/// `GET /openapi.json`.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "operations",
    responses((status = 200, description = "This document", content_type = "application/json"))
)]
pub async fn openapi_json() -> axum::Json<utoipa::openapi::OpenApi> {
    axum::Json(document())
}
