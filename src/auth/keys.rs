//! Token verification against the configured key source, algorithms pinned to the key family.

use std::sync::Arc;
use std::time::Instant;

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode, decode_header};

use super::claims::Claims;
use super::jwks::JwksCache;
use super::verified::{Cached, Verified, VerifiedTokens};
use crate::config::{ConfigError, JwtSettings};

/// Why a token was refused. The variants are for logs and metrics; clients only learn
/// "missing" versus "invalid" (or "expired").
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// No token in the header or the cookie.
    #[error("no token")]
    Missing,
    /// The token has expired.
    #[error("token expired")]
    Expired,
    /// Anything else: bad signature, wrong algorithm, claims, format.
    #[error("invalid token: {0}")]
    Invalid(String),
}

enum KeySource {
    /// One static key: an HS256 secret or a PEM public key.
    Static(DecodingKey),
    /// Keys from a JWKS endpoint, selected by `kid`.
    Jwks(Box<JwksCache>),
}

/// Verifies user JWTs. Cheap to clone.
#[derive(Clone)]
pub struct Authenticator {
    inner: Arc<Inner>,
}

struct Inner {
    source: KeySource,
    validation: Validation,
    verified: VerifiedTokens,
}

impl Authenticator {
    /// Builds from settings. `dev_secret` is the per-start signing secret used when no JWT key
    /// is configured, so that dev-login tokens (and only they) verify.
    pub fn from_settings(settings: &JwtSettings, dev_secret: &[u8]) -> Result<Self, ConfigError> {
        let (source, algorithms) = if let Some(secret) = &settings.secret {
            (
                KeySource::Static(DecodingKey::from_secret(secret.expose().as_bytes())),
                vec![Algorithm::HS256],
            )
        } else if let Some(path) = &settings.public_key_file {
            let pem = std::fs::read(path).map_err(|e| {
                ConfigError::new(
                    "JWT_PUBLIC_KEY_FILE",
                    format!("cannot read {}: {e}", path.display()),
                )
            })?;
            let key = DecodingKey::from_rsa_pem(&pem)
                .or_else(|_| DecodingKey::from_ec_pem(&pem))
                .or_else(|_| DecodingKey::from_ed_pem(&pem))
                .map_err(|_| {
                    ConfigError::new(
                        "JWT_PUBLIC_KEY_FILE",
                        "not a PEM RSA, EC or Ed25519 public key",
                    )
                })?;
            let algorithms = key.family().algorithms().to_vec();
            (KeySource::Static(key), algorithms)
        } else if let Some(url) = &settings.jwks_url {
            (
                KeySource::Jwks(Box::new(JwksCache::new(
                    url.clone(),
                    settings.jwks_min_refetch,
                ))),
                Vec::new(),
            )
        } else {
            (
                KeySource::Static(DecodingKey::from_secret(dev_secret)),
                vec![Algorithm::HS256],
            )
        };

        let mut validation = Validation::new(Algorithm::HS256);
        validation.algorithms = algorithms;
        validation.leeway = settings.leeway.as_secs();
        validation.validate_nbf = true;
        let mut required = vec!["exp", "sub"];
        if let Some(iss) = &settings.issuer {
            validation.set_issuer(&[iss]);
            required.push("iss");
        }
        if let Some(aud) = &settings.audience {
            validation.set_audience(&[aud]);
            required.push("aud");
        } else {
            validation.validate_aud = false;
        }
        validation.set_required_spec_claims(&required);

        let verified = VerifiedTokens::new(validation.leeway);
        Ok(Self {
            inner: Arc::new(Inner {
                source,
                validation,
                verified,
            }),
        })
    }

    /// Verifies a token and returns its user and claims; a token verified within the last
    /// minute is only checked for expiry (see [`super::verified`]).
    pub async fn verify(&self, token: &str) -> Result<Verified, AuthError> {
        let now = Instant::now();
        match self
            .inner
            .verified
            .get(token, now, jsonwebtoken::get_current_timestamp())
        {
            Cached::Valid(verified) => return Ok(verified),
            Cached::Expired => return Err(AuthError::Expired),
            Cached::Unknown => {}
        }
        let verified = Verified::new(self.verify_fully(token).await?);
        self.inner.verified.insert(token, verified.clone(), now);
        Ok(verified)
    }

    async fn verify_fully(&self, token: &str) -> Result<Claims, AuthError> {
        let header = decode_header(token).map_err(classify)?;
        match &self.inner.source {
            KeySource::Static(key) => decode::<Claims>(token, key, &self.inner.validation)
                .map(|data| data.claims)
                .map_err(classify),
            KeySource::Jwks(cache) => {
                // Boxed: a key lookup may fetch the JWKS; inline, that future's size would be
                // carried by every verification.
                let key = Box::pin(cache.key_for(header.kid.as_deref(), header.alg)).await?;
                let mut validation = self.inner.validation.clone();
                validation.algorithms = key.algorithms.clone();
                decode::<Claims>(token, &key.key, &validation)
                    .map(|data| data.claims)
                    .map_err(classify)
            }
        }
    }
}

fn classify(err: jsonwebtoken::errors::Error) -> AuthError {
    match err.kind() {
        ErrorKind::ExpiredSignature => AuthError::Expired,
        other => AuthError::Invalid(format!("{other:?}")),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::time::Duration;

    use super::*;
    use crate::auth::TokenMinter;
    use crate::config::Secret;

    const SECRET: &str = "unit-test-secret-0123456789abcdef";

    fn authenticator() -> Authenticator {
        let settings = JwtSettings {
            secret: Some(Secret::new(SECRET.to_string())),
            public_key_file: None,
            jwks_url: None,
            issuer: None,
            audience: None,
            leeway: Duration::ZERO,
            jwks_min_refetch: Duration::from_secs(10),
        };
        Authenticator::from_settings(&settings, b"unused").unwrap()
    }

    #[tokio::test]
    async fn a_verified_token_is_kept_and_a_refused_one_is_not() {
        let auth = authenticator();
        let token = TokenMinter::new(SECRET.as_bytes(), None, None)
            .mint("bob", None, Duration::from_secs(600))
            .unwrap();
        assert!(auth.verify("not.a.token").await.is_err());
        assert_eq!(auth.inner.verified.len(), 0, "refused tokens are not kept");
        auth.verify(&token).await.unwrap();
        assert_eq!(auth.inner.verified.len(), 1, "the verified token is kept");
        assert_eq!(auth.verify(&token).await.unwrap().user.as_str(), "bob");
        assert_eq!(auth.inner.verified.len(), 1);
    }

    #[tokio::test]
    async fn a_cached_token_does_not_vouch_for_a_tampered_one() {
        let auth = authenticator();
        let minter = TokenMinter::new(SECRET.as_bytes(), None, None);
        let token = minter
            .mint("alice", None, Duration::from_secs(600))
            .unwrap();
        assert_eq!(auth.verify(&token).await.unwrap().user.as_str(), "alice");
        assert_eq!(
            auth.verify(&token).await.unwrap().user.as_str(),
            "alice",
            "from the cache"
        );

        // One signature character changed (not the last, whose low bits are padding).
        let at = token.len() - 5;
        let swapped = if &token[at..=at] == "A" { "B" } else { "A" };
        let forged = format!("{}{swapped}{}", &token[..at], &token[at + 1..]);
        assert!(matches!(
            auth.verify(&forged).await,
            Err(AuthError::Invalid(_))
        ));
        let other = TokenMinter::new(b"another-secret-0123456789abcdef!", None, None)
            .mint("alice", None, Duration::from_secs(600))
            .unwrap();
        assert!(auth.verify(&other).await.is_err());
    }
}
