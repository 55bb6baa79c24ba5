//! `/api/scenarios`: create (with search fallbacks), read, list.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::app::AppState;
use crate::auth::AuthUser;
use crate::domain::pagination::PageQuery;
use crate::domain::scenarios::ScenarioInput;
use crate::error::ApiError;
use crate::http::call_context::call_context;
use crate::http::extract::{AppJson, AppPath, AppQuery};
use crate::ids::ScenarioId;
use crate::store::Scenario;

/// Request body of `POST /api/scenarios`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct CreateScenario {
    /// The novel to search: 1..=200 characters, not blank.
    #[schema(min_length = 1, max_length = 200, pattern = r"\S")]
    novel_id: String,
    /// 1..=4000 characters, not blank.
    #[schema(min_length = 1, max_length = 4000, pattern = r"\S")]
    description: String,
}

/// A scenario as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct ScenarioBody {
    #[schema(value_type = String, format = Uuid)]
    id: ScenarioId,
    novel_id: String,
    description: String,
    passage_ids: Vec<String>,
    /// `ai`, `cache` or `fallback`.
    passages_source: String,
    /// RFC 3339.
    created_at: String,
}

impl From<Scenario> for ScenarioBody {
    fn from(s: Scenario) -> Self {
        Self {
            id: s.id,
            novel_id: s.novel_id,
            description: s.description,
            passage_ids: s.passage_ids,
            passages_source: s.passages_source,
            created_at: super::rfc3339(s.created_at),
        }
    }
}

/// `POST /api/scenarios` → 201.
#[utoipa::path(
    post,
    path = "/api/scenarios",
    tag = "scenarios",
    security(("bearer" = []), ("cookie" = [])),
    request_body = CreateScenario,
    responses(
        (status = 201, body = ScenarioBody, description = "Created; never a 5xx because the AI service is down"),
        (status = 400, body = crate::openapi::Problem, content_type = "application/problem+json"),
        (status = 401, body = crate::openapi::Problem, content_type = "application/problem+json"),
        (status = 429, body = crate::openapi::Problem, content_type = "application/problem+json"),
    )
)]
pub async fn create(
    State(state): State<AppState>,
    user: AuthUser,
    AppJson(body): AppJson<CreateScenario>,
) -> Result<(StatusCode, Json<ScenarioBody>), ApiError> {
    let input = ScenarioInput {
        novel_id: body.novel_id,
        description: body.description,
    };
    let scenario = state
        .scenarios
        .create(&user.id, input, &call_context(Some(&user)))
        .await?;
    Ok((StatusCode::CREATED, Json(scenario.into())))
}

/// `GET /api/scenarios/{id}`.
#[utoipa::path(
    get,
    path = "/api/scenarios/{id}",
    tag = "scenarios",
    security(("bearer" = []), ("cookie" = [])),
    params(("id" = String, Path, format = Uuid, description = "Scenario id")),
    responses(
        (status = 200, body = ScenarioBody),
        (status = 400, body = crate::openapi::Problem, content_type = "application/problem+json"),
        (status = 401, body = crate::openapi::Problem, content_type = "application/problem+json"),
        (status = 404, body = crate::openapi::Problem, content_type = "application/problem+json"),
    )
)]
pub async fn get(
    State(state): State<AppState>,
    user: AuthUser,
    AppPath(id): AppPath<ScenarioId>,
) -> Result<Json<ScenarioBody>, ApiError> {
    Ok(Json(state.scenarios.get(&user.id, id).await?.into()))
}

/// `GET /api/scenarios?limit=&before=`: the caller's own, newest first.
#[utoipa::path(
    get,
    path = "/api/scenarios",
    tag = "scenarios",
    security(("bearer" = []), ("cookie" = [])),
    params(PageQuery),
    responses(
        (status = 200, body = Vec<ScenarioBody>),
        (status = 400, body = crate::openapi::Problem, content_type = "application/problem+json"),
        (status = 401, body = crate::openapi::Problem, content_type = "application/problem+json"),
    )
)]
pub async fn list(
    State(state): State<AppState>,
    user: AuthUser,
    AppQuery(query): AppQuery<PageQuery>,
) -> Result<Json<Vec<ScenarioBody>>, ApiError> {
    let page = query.parse()?;
    let scenarios = state.scenarios.list(&user.id, page).await?;
    Ok(Json(scenarios.into_iter().map(Into::into).collect()))
}
