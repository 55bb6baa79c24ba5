//! `?limit=&before=` for the list routes.

use serde::Deserialize;

use super::DomainError;
use crate::store::Page;

/// Raw query parameters.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// 1..=100, default 20.
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<i64>,
    /// Id (UUID) of the last item already seen; empty means none.
    #[param(
        pattern = r"^$|^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
    )]
    pub before: Option<String>,
}

impl PageQuery {
    /// Validates into a store page.
    pub fn parse<Id: std::str::FromStr>(&self) -> Result<Page<Id>, DomainError> {
        let limit = self.limit.unwrap_or(20);
        if !(1..=100).contains(&limit) {
            return Err(DomainError::invalid("limit", "must be between 1 and 100"));
        }
        let before = match self.before.as_deref().filter(|b| !b.is_empty()) {
            None => None,
            Some(raw) => Some(
                raw.parse()
                    .map_err(|_| DomainError::invalid("before", "is not a valid id"))?,
            ),
        };
        Ok(Page { limit, before })
    }
}
