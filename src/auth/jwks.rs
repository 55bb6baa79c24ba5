//! A JWKS cache: keys by `kid`, refetched on an unknown `kid` at most once per interval and
//! one fetch at a time. `jku`/`x5u` headers are never followed: keys come only from the
//! configured URL. Symmetric (`oct`) keys are refused.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey};
use tokio::sync::{Mutex, RwLock};
use tokio::time::Instant;

use super::keys::AuthError;

/// A usable key and the algorithms its family permits.
#[derive(Clone)]
pub(super) struct JwksKey {
    pub key: DecodingKey,
    pub algorithms: Vec<Algorithm>,
}

pub(super) struct JwksCache {
    url: url::Url,
    min_refetch: Duration,
    client: reqwest::Client,
    keys: RwLock<HashMap<String, JwksKey>>,
    /// Time of the last fetch attempt; the mutex also makes fetches single-flight.
    last_fetch: Mutex<Option<Instant>>,
}

impl JwksCache {
    pub(super) fn new(url: url::Url, min_refetch: Duration) -> Self {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_default();
        Self {
            url,
            min_refetch,
            client,
            keys: RwLock::new(HashMap::new()),
            last_fetch: Mutex::new(None),
        }
    }

    /// The key for `kid` (or the only key compatible with `alg` when the token has no `kid`).
    pub(super) async fn key_for(
        &self,
        kid: Option<&str>,
        alg: Algorithm,
    ) -> Result<Arc<JwksKey>, AuthError> {
        if let Some(key) = self.lookup(kid, alg).await {
            return Ok(key);
        }
        self.refetch().await;
        self.lookup(kid, alg)
            .await
            .ok_or_else(|| AuthError::Invalid("unknown kid".into()))
    }

    async fn lookup(&self, kid: Option<&str>, alg: Algorithm) -> Option<Arc<JwksKey>> {
        let keys = self.keys.read().await;
        match kid {
            Some(kid) => keys.get(kid).cloned().map(Arc::new),
            None => keys
                .values()
                .find(|k| k.algorithms.contains(&alg))
                .cloned()
                .map(Arc::new),
        }
    }

    /// Fetches the set unless another fetch happened within `min_refetch`.
    async fn refetch(&self) {
        let mut last = self.last_fetch.lock().await;
        if let Some(at) = *last
            && at.elapsed() < self.min_refetch
        {
            return;
        }
        *last = Some(Instant::now());
        match self.fetch().await {
            Ok(keys) => {
                tracing::info!(keys = keys.len(), "JWKS fetched");
                *self.keys.write().await = keys;
            }
            Err(err) => tracing::warn!(error = %err, "JWKS fetch failed; keeping cached keys"),
        }
    }

    async fn fetch(&self) -> Result<HashMap<String, JwksKey>, String> {
        let response = self
            .client
            .get(self.url.clone())
            .send()
            .await
            .map_err(|e| format!("request failed: {}", e.without_url()))?;
        if !response.status().is_success() {
            return Err(format!("status {}", response.status()));
        }
        let set: JwkSet = response
            .json()
            .await
            .map_err(|e| format!("not a JWK set: {}", e.without_url()))?;
        let mut keys = HashMap::new();
        for jwk in &set.keys {
            let Some(kid) = jwk.common.key_id.clone() else {
                continue;
            };
            match usable_key(jwk) {
                Some(key) => {
                    keys.insert(kid, key);
                }
                None => tracing::warn!(kid, "ignoring unusable JWK (symmetric or unsupported)"),
            }
        }
        Ok(keys)
    }
}

fn usable_key(jwk: &Jwk) -> Option<JwksKey> {
    let algorithms = match &jwk.algorithm {
        AlgorithmParameters::OctetKey(_) => return None,
        AlgorithmParameters::RSA(_) => vec![
            Algorithm::RS256,
            Algorithm::RS384,
            Algorithm::RS512,
            Algorithm::PS256,
            Algorithm::PS384,
            Algorithm::PS512,
        ],
        AlgorithmParameters::EllipticCurve(ec) => match ec.curve {
            EllipticCurve::P256 => vec![Algorithm::ES256],
            EllipticCurve::P384 => vec![Algorithm::ES384],
            _ => return None,
        },
        AlgorithmParameters::OctetKeyPair(_) => vec![Algorithm::EdDSA],
    };
    let key = DecodingKey::from_jwk(jwk).ok()?;
    Some(JwksKey { key, algorithms })
}
