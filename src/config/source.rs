//! Where raw configuration values come from: defaults < TOML file < environment.

use std::collections::BTreeMap;
use std::path::Path;

use super::ConfigError;

/// Raw string values keyed by their contract variable name (`BIND_ADDR`, …), after layering.
///
/// Parsing into types happens in one place ([`super::Settings::from_source`]) so that every
/// error can name the variable it came from.
#[derive(Debug, Default, Clone)]
pub struct RawConfig {
    values: BTreeMap<String, String>,
}

impl RawConfig {
    /// Layers the TOML file (if any) under the process environment.
    pub fn load(config_file: Option<&Path>) -> Result<Self, ConfigError> {
        Self::layered(config_file, std::env::vars())
    }

    /// Layers the TOML file (if any) under the given environment pairs.
    pub fn layered(
        config_file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let mut raw = Self::default();
        if let Some(path) = config_file {
            raw.merge_toml_file(path)?;
        }
        raw.merge_pairs(env);
        Ok(raw)
    }

    /// Builds a configuration from explicit pairs only (tests, embedding).
    pub fn from_pairs<K: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        let mut raw = Self::default();
        raw.merge_pairs(pairs.into_iter().map(|(k, v)| (k.into(), v.into())));
        raw
    }

    /// Sets one value, overriding what was there.
    pub fn set(&mut self, key: impl Into<String>, value: impl Into<String>) {
        self.values.insert(key.into(), value.into());
    }

    /// The value of `key`, treating an empty string as unset.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.values
            .get(key)
            .map(String::as_str)
            .filter(|v| !v.trim().is_empty())
    }

    fn merge_pairs(&mut self, pairs: impl IntoIterator<Item = (String, String)>) {
        for (key, value) in pairs {
            self.values.insert(key, value);
        }
    }

    fn merge_toml_file(&mut self, path: &Path) -> Result<(), ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigError::new(
                "SLUICE_CONFIG",
                format!("cannot read {}: {e}", path.display()),
            )
        })?;
        let table: toml::Table = toml::from_str(&text).map_err(|e| {
            ConfigError::new(
                "SLUICE_CONFIG",
                format!("{} is not valid TOML: {e}", path.display()),
            )
        })?;
        for (key, value) in table {
            let name = key.to_ascii_uppercase();
            let text = toml_value_to_string(&value).ok_or_else(|| {
                ConfigError::new(&name, "must be a string, number, boolean or list")
            })?;
            self.values.insert(name, text);
        }
        Ok(())
    }
}

fn toml_value_to_string(value: &toml::Value) -> Option<String> {
    match value {
        toml::Value::String(s) => Some(s.clone()),
        toml::Value::Integer(i) => Some(i.to_string()),
        toml::Value::Float(f) => Some(f.to_string()),
        toml::Value::Boolean(b) => Some(b.to_string()),
        toml::Value::Array(items) => items
            .iter()
            .map(toml_value_to_string)
            .collect::<Option<Vec<_>>>()
            .map(|v| v.join(",")),
        _ => None,
    }
}
