//! Reading a bearer token from `Authorization`.

use axum::http::{HeaderMap, header};

/// The token of an `Authorization: Bearer …` header (scheme case-insensitive), if any.
/// `Err(())` means the header is present but not a bearer credential.
pub fn bearer_token(headers: &HeaderMap) -> Option<Result<&str, ()>> {
    let value = headers.get(header::AUTHORIZATION)?;
    Some(
        value
            .to_str()
            .ok()
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim())
            .filter(|token| !token.is_empty())
            .ok_or(()),
    )
}
