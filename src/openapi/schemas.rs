//! Schemas that exist only to document wire formats produced elsewhere.

use serde::Serialize;
use utoipa::ToSchema;

/// An RFC 9457 problem (every error response, `application/problem+json`).
#[derive(Serialize, ToSchema)]
pub struct Problem {
    /// A URI naming the problem type.
    #[serde(rename = "type")]
    pub kind: String,
    /// Short summary.
    pub title: String,
    /// HTTP status.
    pub status: u16,
    /// What went wrong, for a person.
    pub detail: String,
    /// Machine-readable code (CONTRACT.md section 3).
    #[schema(example = "validation_failed")]
    pub code: String,
    /// The request id (also in `X-Request-Id`).
    pub request_id: Option<String>,
    /// Invalid fields (validation errors only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errors: Option<Vec<FieldErrorDoc>>,
}

/// One invalid field.
#[derive(Serialize, ToSchema)]
#[schema(as = FieldError)]
pub struct FieldErrorDoc {
    /// The field as named in the request.
    pub field: String,
    /// What is wrong.
    pub message: String,
}
