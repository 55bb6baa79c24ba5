//! An upstream's base URL, taken apart once so that a call only joins its path to it.

use std::fmt;

use http::Uri;
use http::header::HeaderValue;
use http::uri::{Authority, PathAndQuery, Scheme};
use url::Url;

use super::error::UpstreamError;

/// The base URL of an upstream (the AI service or an OpenAI-compatible fallback) with the
/// parts every call needs: its scheme and authority, its path prefix and its `Host` header.
/// Parsing and formatting these per call was a few percent of a proxied call.
#[derive(Clone)]
pub struct BaseUrl {
    url: Url,
    /// `None` when the URL cannot take a path (refused per call, as before it was parsed).
    parts: Option<Parts>,
}

#[derive(Clone)]
struct Parts {
    scheme: Scheme,
    authority: Authority,
    /// The base's path without its trailing slash (`""` for a bare host).
    prefix: String,
    host: HeaderValue,
}

impl BaseUrl {
    /// Takes `url` apart; a URL that cannot be a base is kept and refused by
    /// [`BaseUrl::endpoint`].
    pub fn new(url: Url) -> Self {
        let parts = Parts::of(&url);
        Self { url, parts }
    }

    /// The URL as configured.
    pub fn url(&self) -> &Url {
        &self.url
    }

    /// The base joined with `path_and_query`, keeping any path prefix of the base
    /// (`http://h/prefix` + `/v1/models` → `http://h/prefix/v1/models`).
    ///
    /// The path is taken as it is: not percent-encoded (a path that is not already a valid
    /// URI path is refused) and its dot segments not resolved, so a call goes exactly where
    /// its path says. Callers that take a path from outside refuse dot segments first (the
    /// passthrough).
    pub fn endpoint(&self, path_and_query: &str) -> Result<Uri, UpstreamError> {
        let invalid = || UpstreamError::Request("invalid upstream URL");
        let parts = self.parts.as_ref().ok_or_else(invalid)?;
        let separator = if path_and_query.starts_with('/') {
            ""
        } else {
            "/"
        };
        let path_and_query = if parts.prefix.is_empty() && separator.is_empty() {
            PathAndQuery::try_from(path_and_query)
        } else {
            PathAndQuery::try_from([&parts.prefix, separator, path_and_query].concat())
        }
        .map_err(|_| invalid())?;
        parts.uri(path_and_query)
    }

    /// [`BaseUrl::endpoint`] for a path and query that is already parsed (a proxied
    /// request's): under a base without a path prefix it is used as it is, a reference count
    /// rather than a copy and a second validation.
    pub fn endpoint_at(&self, path_and_query: &PathAndQuery) -> Result<Uri, UpstreamError> {
        match &self.parts {
            Some(parts) if parts.prefix.is_empty() && path_and_query.as_str().starts_with('/') => {
                parts.uri(path_and_query.clone())
            }
            _ => self.endpoint(path_and_query.as_str()),
        }
    }

    /// The `Host` header of every call: host, with `:port` unless the scheme's default,
    /// never the URL's credentials. The transport would otherwise make it from the URL per call.
    pub fn host(&self) -> Option<&HeaderValue> {
        self.parts.as_ref().map(|parts| &parts.host)
    }
}

impl Parts {
    /// The base's scheme and authority with `path_and_query`.
    fn uri(&self, path_and_query: PathAndQuery) -> Result<Uri, UpstreamError> {
        let mut uri = http::uri::Parts::default();
        uri.scheme = Some(self.scheme.clone());
        uri.authority = Some(self.authority.clone());
        uri.path_and_query = Some(path_and_query);
        Uri::from_parts(uri).map_err(|_| UpstreamError::Request("invalid upstream URL"))
    }

    fn of(url: &Url) -> Option<Self> {
        if url.cannot_be_a_base() {
            return None;
        }
        let scheme = Scheme::try_from(url.scheme()).ok()?;
        let host = url.host_str()?;
        let host_port = match url.port() {
            Some(port) => format!("{host}:{port}"),
            None => host.to_owned(),
        };
        Some(Self {
            scheme,
            authority: Authority::try_from(host_port.as_str()).ok()?,
            prefix: url.path().trim_end_matches('/').to_owned(),
            host: HeaderValue::try_from(host_port).ok()?,
        })
    }
}

impl fmt::Debug for BaseUrl {
    /// The URL without credentials, query or fragment.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let host = self.url.host_str().unwrap_or("unknown");
        match self.url.port() {
            Some(port) => write!(
                f,
                "{}://{host}:{port}{}",
                self.url.scheme(),
                self.url.path()
            ),
            None => write!(f, "{}://{host}{}", self.url.scheme(), self.url.path()),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn base(url: &str) -> BaseUrl {
        BaseUrl::new(Url::parse(url).unwrap())
    }

    #[test]
    fn endpoint_keeps_the_base_path_prefix() {
        assert_eq!(
            base("http://ai.internal:8090/prefix/")
                .endpoint("/v1/models?x=1")
                .unwrap()
                .to_string(),
            "http://ai.internal:8090/prefix/v1/models?x=1"
        );
        assert_eq!(
            base("http://ai.internal:8090")
                .endpoint("api/ai/generate")
                .unwrap()
                .to_string(),
            "http://ai.internal:8090/api/ai/generate"
        );
        let with_query = base("https://ai.internal/base?old=1#frag");
        assert_eq!(
            with_query
                .endpoint("/api/search/x%20y?q=a%20b&k=")
                .unwrap()
                .to_string(),
            "https://ai.internal/base/api/search/x%20y?q=a%20b&k="
        );
        assert_eq!(
            with_query.endpoint("/v1/models").unwrap().to_string(),
            "https://ai.internal/base/v1/models"
        );
    }

    #[test]
    fn endpoint_takes_the_path_as_it_is() {
        let prefixed = base("http://ai.internal:8090/prefix");
        assert_eq!(
            prefixed.endpoint("/a/../b").unwrap().to_string(),
            "http://ai.internal:8090/prefix/a/../b",
            "dot segments are not resolved into another path"
        );
        assert!(prefixed.endpoint("/x y").is_err(), "not a URI path");
        assert!(base("http://ai.internal").endpoint("/x y").is_err());
    }

    #[test]
    fn a_url_that_cannot_be_a_base_is_refused_per_call() {
        assert!(base("mailto:ai@example.com").endpoint("/x").is_err());
    }

    #[test]
    fn a_parsed_path_joins_the_base_as_a_string_would() {
        for (base_url, path) in [
            ("http://ai.internal:8000", "/api/search/x%20y?q=a%20b&k="),
            ("http://ai.internal:8000/prefix/", "/v1/models?x=1"),
            ("http://ai.internal", "/"),
        ] {
            let base = base(base_url);
            let parsed = PathAndQuery::from_static(path);
            assert_eq!(
                base.endpoint_at(&parsed).unwrap(),
                base.endpoint(path).unwrap(),
                "{base_url} {path}"
            );
        }
        let parsed = PathAndQuery::from_static("/x");
        assert!(base("mailto:ai@example.com").endpoint_at(&parsed).is_err());
    }

    #[test]
    fn the_host_header_never_carries_credentials_or_a_default_port() {
        let host = |url: &str| base(url).host().unwrap().clone();
        assert_eq!(host("http://ai.internal:8080/x"), "ai.internal:8080");
        assert_eq!(
            host("http://user:pw@ai.internal:8080/x"),
            "ai.internal:8080"
        );
        assert_eq!(host("http://ai.internal:80/x"), "ai.internal");
        assert_eq!(host("https://user@ai.internal/x"), "ai.internal");
        assert_eq!(host("https://[::1]:8443/"), "[::1]:8443");
    }

    #[test]
    fn debug_output_hides_credentials_and_query() {
        let shown = format!("{:?}", base("https://user:pw@api.example.com/v1?key=k"));
        assert_eq!(shown, "https://api.example.com/v1");
    }
}
