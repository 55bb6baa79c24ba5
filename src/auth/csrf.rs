//! The CSRF rule for cookie-authenticated requests: unsafe methods must come from our own
//! origin or an allowed one. Bearer-token requests need no check (a browser never attaches
//! them on its own).

use axum::http::{HeaderMap, Method, header};

/// Which origins may send cookie-authenticated unsafe requests.
#[derive(Debug, Clone, Default)]
pub struct OriginPolicy {
    allowed: Vec<String>,
}

impl OriginPolicy {
    /// Allows same-origin plus `allowed` (exact `scheme://host[:port]` strings).
    pub fn new(allowed: Vec<String>) -> Self {
        Self { allowed }
    }

    /// The configured cross-origin allowlist (also used by CORS).
    pub fn allowed(&self) -> &[String] {
        &self.allowed
    }

    /// Whether a cookie-authenticated request with these headers may proceed.
    pub fn permits(&self, method: &Method, headers: &HeaderMap) -> bool {
        if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
            return true;
        }
        let origin = headers
            .get(header::ORIGIN)
            .and_then(|v| v.to_str().ok())
            .filter(|v| *v != "null")
            .map(str::to_string)
            .or_else(|| {
                headers
                    .get(header::REFERER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|r| url::Url::parse(r).ok())
                    .map(|u| u.origin().ascii_serialization())
            });
        let Some(origin) = origin else {
            return false;
        };
        if self.allowed.iter().any(|a| a == &origin) {
            return true;
        }
        let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
        match (url::Url::parse(&origin), host) {
            (Ok(url), Some(host)) => {
                let origin_host = match url.port() {
                    Some(port) => format!("{}:{port}", url.host_str().unwrap_or_default()),
                    None => url.host_str().unwrap_or_default().to_string(),
                };
                origin_host.eq_ignore_ascii_case(host)
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(header::HeaderName, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(k.clone(), HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn same_origin_allowed_foreign_refused() {
        let policy = OriginPolicy::new(vec!["https://app.test".into()]);
        let post = Method::POST;
        let same = headers(&[
            (header::HOST, "127.0.0.1:8080"),
            (header::ORIGIN, "http://127.0.0.1:8080"),
        ]);
        assert!(policy.permits(&post, &same));
        let listed = headers(&[
            (header::HOST, "gw.test"),
            (header::ORIGIN, "https://app.test"),
        ]);
        assert!(policy.permits(&post, &listed));
        let foreign = headers(&[
            (header::HOST, "gw.test"),
            (header::ORIGIN, "https://evil.test"),
        ]);
        assert!(!policy.permits(&post, &foreign));
        let referer = headers(&[
            (header::HOST, "gw.test"),
            (header::REFERER, "http://gw.test/page"),
        ]);
        assert!(policy.permits(&post, &referer));
        let none = headers(&[(header::HOST, "gw.test")]);
        assert!(!policy.permits(&post, &none));
        assert!(policy.permits(&Method::GET, &none));
    }
}
