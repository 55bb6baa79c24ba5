//! `/api/scenarios`: create (with search fallbacks), read, list.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};

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
#[derive(Debug, Deserialize)]
pub struct CreateScenario {
    novel_id: String,
    description: String,
}

/// A scenario as the API shows it.
#[derive(Debug, Serialize)]
pub struct ScenarioBody {
    id: ScenarioId,
    novel_id: String,
    description: String,
    passage_ids: Vec<String>,
    passages_source: String,
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
pub async fn get(
    State(state): State<AppState>,
    user: AuthUser,
    AppPath(id): AppPath<ScenarioId>,
) -> Result<Json<ScenarioBody>, ApiError> {
    Ok(Json(state.scenarios.get(&user.id, id).await?.into()))
}

/// `GET /api/scenarios?limit=&before=`: the caller's own, newest first.
pub async fn list(
    State(state): State<AppState>,
    user: AuthUser,
    AppQuery(query): AppQuery<PageQuery>,
) -> Result<Json<Vec<ScenarioBody>>, ApiError> {
    let page = query.parse()?;
    let scenarios = state.scenarios.list(&user.id, page).await?;
    Ok(Json(scenarios.into_iter().map(Into::into).collect()))
}
