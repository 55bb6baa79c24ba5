//! The request every load generator repeats: method, URLs, headers and body, from the command
//! line (`h1_client` turns it into requests).

use hyper::Method;
use hyper::header::{HeaderMap, HeaderName, HeaderValue};

/// One request shape; several URLs or bearer tokens are used in turn (stream `i` takes entry
/// `i % len`), so many conversations or users can be spread over one run.
#[derive(Debug, Clone)]
pub struct RequestSpec {
    /// HTTP method.
    pub method: Method,
    /// Target URLs, used in turn.
    pub urls: Vec<String>,
    /// Extra headers sent on every request.
    pub headers: HeaderMap,
    /// Bearer tokens, used in turn; empty means no `Authorization` header is added.
    pub bearer_tokens: Vec<String>,
    /// JSON body, if any.
    pub body: Option<String>,
}

impl RequestSpec {
    /// Builds the spec from command-line values: `headers` as `Name: value`, `urls_file` and
    /// `tokens_file` with one entry a line.
    pub fn from_args(
        method: &str,
        url: Option<&str>,
        urls_file: Option<&str>,
        headers: &[String],
        tokens_file: Option<&str>,
        body: Option<String>,
    ) -> Result<Self, String> {
        let method = Method::from_bytes(method.as_bytes()).map_err(|e| format!("--method: {e}"))?;
        let mut urls: Vec<String> = url.map(str::to_owned).into_iter().collect();
        if let Some(path) = urls_file {
            urls.extend(lines(path)?);
        }
        if urls.is_empty() {
            return Err("give --url or --urls-file".into());
        }
        let mut header_map = HeaderMap::new();
        for header in headers {
            let (name, value) = header
                .split_once(':')
                .ok_or_else(|| format!("--header {header:?}: expected `Name: value`"))?;
            let name = HeaderName::from_bytes(name.trim().as_bytes())
                .map_err(|e| format!("--header name: {e}"))?;
            let value =
                HeaderValue::from_str(value.trim()).map_err(|e| format!("--header value: {e}"))?;
            header_map.append(name, value);
        }
        let bearer_tokens = match tokens_file {
            Some(path) => lines(path)?,
            None => Vec::new(),
        };
        Ok(Self {
            method,
            urls,
            headers: header_map,
            bearer_tokens,
            body,
        })
    }
}

fn lines(path: &str) -> Result<Vec<String>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("reading {path}: {e}"))?;
    Ok(text
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .map(str::to_owned)
        .collect())
}
