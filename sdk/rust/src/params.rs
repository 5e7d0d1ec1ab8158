//! Typed access to an action's or a step's params.

use crate::{Param, PluginError};

/// The params of an action or a step (`[params]` of the action file, or
/// what the strategist put into the step), read with defaults. Every
/// refusal is a [`PluginError::InvalidInput`] naming the param: return it
/// with `?`.
///
/// ```ignore
/// let params = Params::new(&action.params);
/// let header = params.required("header")?;
/// let globs = params.list("globs", "**/*.rs");
/// let regex = params.flag("regex", false)?;
/// let hold_ms = params.number("hold_ms", 0)?;
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Params<'a> {
    params: &'a [Param],
}

impl<'a> Params<'a> {
    /// The params, as the WIT hands them over (`action.params`,
    /// `step.params`).
    pub fn new(params: &'a [Param]) -> Self {
        Self { params }
    }

    /// The value of `key`, if present (the first one, if repeated).
    pub fn get(&self, key: &str) -> Option<&'a str> {
        self.params
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The value of `key`, or `default` when it is absent.
    pub fn get_or(&self, key: &str, default: &'a str) -> &'a str {
        self.get(key).unwrap_or(default)
    }

    /// The value of `key`; absent or blank is `invalid-input`
    /// ("param `key` is required").
    pub fn required(&self, key: &str) -> Result<&'a str, PluginError> {
        self.get(key)
            .filter(|v| !v.trim().is_empty())
            .ok_or_else(|| PluginError::InvalidInput(format!("param `{key}` is required")))
    }

    /// `key` as `"true"` or `"false"` (in any case, blanks around
    /// ignored), `default` when absent or blank.
    pub fn flag(&self, key: &str, default: bool) -> Result<bool, PluginError> {
        let Some(value) = self.get(key) else {
            return Ok(default);
        };
        match value.trim().to_ascii_lowercase().as_str() {
            "" => Ok(default),
            "true" => Ok(true),
            "false" => Ok(false),
            _ => Err(PluginError::InvalidInput(format!(
                "param `{key}` must be \"true\" or \"false\", not {value:?}"
            ))),
        }
    }

    /// `key` as a whole number, `default` when absent.
    pub fn number(&self, key: &str, default: u64) -> Result<u64, PluginError> {
        match self.get(key) {
            None => Ok(default),
            Some(v) => v.trim().parse().map_err(|_| {
                PluginError::InvalidInput(format!(
                    "param `{key}` must be a whole number, not {v:?}"
                ))
            }),
        }
    }

    /// `key` as a comma-separated list (items trimmed, empty ones left
    /// out), `default` (also comma-separated) when absent.
    pub fn list(&self, key: &str, default: &'a str) -> Vec<&'a str> {
        self.get_or(key, default)
            .split(',')
            .map(str::trim)
            .filter(|item| !item.is_empty())
            .collect()
    }

    /// `key` parsed by `parse`, `default` when absent; `parse`'s error says
    /// what the value must be ("a regular expression: …") and becomes
    /// "param `key` must be …, not "value"".
    pub fn parse_or<T>(
        &self,
        key: &str,
        default: T,
        parse: impl FnOnce(&'a str) -> Result<T, String>,
    ) -> Result<T, PluginError> {
        match self.get(key) {
            None => Ok(default),
            Some(v) => parse(v).map_err(|must| {
                PluginError::InvalidInput(format!("param `{key}` must be {must}, not {v:?}"))
            }),
        }
    }

    /// The params named in `keys` that are present, in their order here:
    /// what a strategist copies from the action into each step.
    pub fn pick(&self, keys: &[&str]) -> Vec<Param> {
        self.params
            .iter()
            .filter(|(k, _)| keys.contains(&k.as_str()))
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> Vec<Param> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn values_come_with_defaults() {
        let raw = params(&[("a", "1"), ("a", "2"), ("globs", " *.md, ,src/** ")]);
        let p = Params::new(&raw);
        assert_eq!(p.get("a"), Some("1"));
        assert_eq!(p.get_or("b", "x"), "x");
        assert_eq!(p.list("globs", "**/*"), ["*.md", "src/**"]);
        assert_eq!(p.list("other", "**/*"), ["**/*"]);
        assert_eq!(p.number("a", 7), Ok(1));
        assert_eq!(p.number("b", 7), Ok(7));
        assert_eq!(p.flag("b", true), Ok(true));
        assert_eq!(p.pick(&["globs", "a"]), raw);
    }

    #[test]
    fn flags_take_any_case_and_blank_is_the_default() {
        let raw = params(&[("on", " TRUE "), ("off", "False"), ("blank", " ")]);
        let p = Params::new(&raw);
        assert_eq!(p.flag("on", false), Ok(true));
        assert_eq!(p.flag("off", true), Ok(false));
        assert_eq!(p.flag("blank", true), Ok(true));
    }

    #[test]
    fn refusals_name_the_param_and_the_value() {
        let raw = params(&[("n", "ten"), ("f", "yes"), ("blank", "  ")]);
        let p = Params::new(&raw);
        let invalid = |m: &str| PluginError::InvalidInput(m.into());
        assert_eq!(
            p.number("n", 0).unwrap_err(),
            invalid("param `n` must be a whole number, not \"ten\"")
        );
        assert_eq!(
            p.flag("f", false).unwrap_err(),
            invalid("param `f` must be \"true\" or \"false\", not \"yes\"")
        );
        assert_eq!(
            p.required("blank").unwrap_err(),
            invalid("param `blank` is required")
        );
        assert_eq!(
            p.required("none").unwrap_err(),
            invalid("param `none` is required")
        );
        let byte = p.parse_or("n", 0u8, |v| v.parse().map_err(|_| "a byte".to_string()));
        assert_eq!(
            byte.unwrap_err(),
            invalid("param `n` must be a byte, not \"ten\"")
        );
    }
}
