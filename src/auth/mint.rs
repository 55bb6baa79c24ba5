//! Mints HS256 tokens for dev login and `sluice token`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{EncodingKey, Header, encode};

use super::claims::Claims;

/// Signs dev tokens with the configured `JWT_SECRET` (or the per-start dev secret).
#[derive(Clone)]
pub struct TokenMinter {
    key: EncodingKey,
    issuer: Option<String>,
    audience: Option<String>,
}

impl TokenMinter {
    /// A minter for `secret`, stamping `iss`/`aud` when the gateway requires them.
    pub fn new(secret: &[u8], issuer: Option<String>, audience: Option<String>) -> Self {
        Self {
            key: EncodingKey::from_secret(secret),
            issuer,
            audience,
        }
    }

    /// A token for `sub` valid for `ttl`.
    pub fn mint(&self, sub: &str, name: Option<&str>, ttl: Duration) -> Result<String, String> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_err(|e| e.to_string())?
            .as_secs();
        let claims = Claims {
            sub: sub.to_string(),
            exp: now + ttl.as_secs(),
            iat: Some(now),
            nbf: None,
            iss: self.issuer.clone(),
            aud: self.audience.clone().map(serde_json::Value::String),
            name: name.map(str::to_string),
        };
        encode(&Header::default(), &claims, &self.key).map_err(|e| e.to_string())
    }
}
