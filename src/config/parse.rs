//! Typed readers over [`RawConfig`] that name the variable in every error.

use std::str::FromStr;
use std::time::Duration;

use super::{ConfigError, LogFormat, RawConfig, Secret};

/// Reads typed values out of a [`RawConfig`].
pub(super) struct Parser<'a> {
    raw: &'a RawConfig,
}

impl<'a> Parser<'a> {
    pub(super) fn new(raw: &'a RawConfig) -> Self {
        Self { raw }
    }

    pub(super) fn string(&self, key: &str) -> Option<String> {
        self.raw.get(key).map(|v| v.trim().to_string())
    }

    pub(super) fn secret(&self, key: &str) -> Option<Secret<String>> {
        self.raw.get(key).map(|v| Secret::new(v.to_string()))
    }

    pub(super) fn parse_or<T: FromStr>(
        &self,
        key: &str,
        default: Option<T>,
    ) -> Result<T, ConfigError>
    where
        T::Err: std::fmt::Display,
    {
        match self.raw.get(key) {
            Some(v) => v
                .trim()
                .parse()
                .map_err(|e| ConfigError::new(key, format!("cannot parse {:?}: {e}", v.trim()))),
            None => default.ok_or_else(|| ConfigError::new(key, "is required")),
        }
    }

    pub(super) fn positive(&self, key: &str, default: u32) -> Result<u32, ConfigError> {
        let value: u32 = self.parse_or(key, Some(default))?;
        if value == 0 {
            return Err(ConfigError::new(key, "must be at least 1"));
        }
        Ok(value)
    }

    pub(super) fn percent(&self, key: &str, default: u8) -> Result<u8, ConfigError> {
        let value: u8 = self.parse_or(key, Some(default))?;
        if !(1..=100).contains(&value) {
            return Err(ConfigError::new(key, "must be between 1 and 100"));
        }
        Ok(value)
    }

    pub(super) fn secs(&self, key: &str, default: u64) -> Result<Duration, ConfigError> {
        Ok(Duration::from_secs(self.parse_or(key, Some(default))?))
    }

    pub(super) fn millis(&self, key: &str, default: u64) -> Result<Duration, ConfigError> {
        let ms: u64 = self.parse_or(key, Some(default))?;
        if ms == 0 {
            return Err(ConfigError::new(key, "must be at least 1"));
        }
        Ok(Duration::from_millis(ms))
    }

    pub(super) fn bool(&self, key: &str, default: bool) -> Result<bool, ConfigError> {
        match self.raw.get(key).map(|v| v.trim().to_ascii_lowercase()) {
            None => Ok(default),
            Some(v) => match v.as_str() {
                "true" | "1" | "yes" | "on" => Ok(true),
                "false" | "0" | "no" | "off" => Ok(false),
                _ => Err(ConfigError::new(key, "must be true or false")),
            },
        }
    }

    pub(super) fn url(&self, key: &str) -> Result<Option<url::Url>, ConfigError> {
        self.raw
            .get(key)
            .map(|v| parse_http_url(key, v))
            .transpose()
    }

    pub(super) fn url_list(&self, key: &str) -> Result<Vec<url::Url>, ConfigError> {
        self.list(key)
            .iter()
            .map(|item| parse_http_url(key, item))
            .collect()
    }

    pub(super) fn origin_list(&self, key: &str) -> Result<Vec<String>, ConfigError> {
        self.list(key)
            .into_iter()
            .map(|item| {
                let url = parse_http_url(key, &item)?;
                Ok(url.origin().ascii_serialization())
            })
            .collect()
    }

    pub(super) fn log_format(&self, key: &str) -> Result<LogFormat, ConfigError> {
        match self.raw.get(key).map(|v| v.trim().to_ascii_lowercase()) {
            None => {
                use std::io::IsTerminal;
                Ok(if std::io::stdout().is_terminal() {
                    LogFormat::Pretty
                } else {
                    LogFormat::Json
                })
            }
            Some(v) if v == "pretty" => Ok(LogFormat::Pretty),
            Some(v) if v == "json" => Ok(LogFormat::Json),
            Some(_) => Err(ConfigError::new(key, "must be pretty or json")),
        }
    }

    fn list(&self, key: &str) -> Vec<String> {
        self.raw
            .get(key)
            .map(|v| {
                v.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// Parses an http(s) URL; the error never echoes the value (it may hold credentials).
fn parse_http_url(key: &str, value: &str) -> Result<url::Url, ConfigError> {
    let url = url::Url::parse(value.trim())
        .map_err(|e| ConfigError::new(key, format!("not a valid URL ({e})")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(ConfigError::new(key, "must be an http or https URL"));
    }
    Ok(url)
}
