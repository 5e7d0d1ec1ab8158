//! The operator's plugin policy file, `lockstep.toml`: ceilings no plugin
//! manifest can raise, the defaults a plugin that asks for nothing gets, caps
//! on changesets, and an allow-list of plugin names.
//!
//! ```toml
//! [limits]             # ceilings: no plugin gets more, whatever it asks for
//! timeout_ms = 30000
//! memory_mb = 512
//! fuel = 5000000000    # setting a fuel ceiling turns fuel metering on
//! summary_bytes = 2048
//!
//! [defaults]           # what a plugin asking for nothing gets (clamped to [limits])
//! timeout_ms = 10000
//!
//! [changeset]          # caps on what one plan may change (lowered, never raised)
//! max_files = 10000
//!
//! [plugins]
//! allow = ["license-header", "replace"]   # empty or absent: every plugin
//! ```
//!
//! It is read from the user's config directory
//! ([`crate::config::user_config_dir`]) unless `--policy FILE` names
//! another; embedders set the same things on
//! [`PluginsConfig`](super::PluginsConfig) and
//! [`LifecycleOptions`](crate::lifecycle::LifecycleOptions) directly, or
//! read a file with [`Policy::read`] and [`Policy::apply`] it. Unknown keys
//! and zero values are errors that name the file, line and column.

use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use super::limits::{Limits, LimitsPolicy};
use super::manifest::{is_valid_name, locate};
use super::PluginsConfig;
use crate::workspace::ChangeLimits;

/// The policy file's name in the user's config directory.
pub const POLICY_FILE: &str = "lockstep.toml";

/// One mebibyte.
const MIB: u64 = 1024 * 1024;
/// The most memory a 32-bit WebAssembly instance can address.
const MAX_MEMORY_MB: u64 = 4096;

/// Why a policy file was refused.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// The file could not be read.
    #[error("cannot read the policy file {}: {source}", path.display())]
    Read {
        /// The policy file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a valid policy.
    #[error("{}{}: {message}{}\nfix the policy file, or point --policy at another one", path.display(), location.map(|(l, c)| format!(":{l}:{c}")).unwrap_or_default(), snippet.as_ref().map(|s| format!("\n{s}")).unwrap_or_default())]
    Invalid {
        /// The policy file.
        path: PathBuf,
        /// 1-based line and column, when the problem has a place.
        location: Option<(usize, usize)>,
        /// What is wrong and what is expected.
        message: String,
        /// The offending line with a caret under the problem.
        snippet: Option<String>,
    },
}

impl PolicyError {
    fn invalid(path: &Path, text: &str, span: Option<Range<usize>>, message: String) -> Self {
        let (location, snippet) = match span {
            Some(span) => {
                let (line, col, snippet) = locate(text, span);
                (Some((line, col)), Some(snippet))
            }
            None => (None, None),
        };
        PolicyError::Invalid {
            path: path.to_path_buf(),
            location,
            message,
            snippet,
        }
    }
}

/// A policy read from a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// Defaults and ceilings of every plugin call.
    pub limits: LimitsPolicy,
    /// The plugin names allowed to run; empty allows every plugin.
    pub allow: Vec<String>,
    /// Caps on changesets, when the file sets any (each only lowers the
    /// host's own).
    pub changes: Option<ChangeCaps>,
    /// The file it was read from.
    pub source: PathBuf,
}

/// The `[changeset]` caps a policy file sets.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ChangeCaps {
    /// `max_files`: most files one plan may change.
    pub max_files: Option<u64>,
    /// `max_file_bytes`: largest file one change may write.
    pub max_file_bytes: Option<u64>,
    /// `max_total_bytes`: most bytes one changeset may write.
    pub max_total_bytes: Option<u64>,
    /// `max_original_bytes`: largest project file the host reads as the
    /// original of a change (at Execute and in the drift check).
    pub max_original_bytes: Option<u64>,
}

impl ChangeCaps {
    /// `caps` lowered to these values (never raised).
    pub fn clamp(&self, caps: ChangeLimits) -> ChangeLimits {
        ChangeLimits {
            max_changes: self.max_files.map_or(caps.max_changes, |n| {
                caps.max_changes
                    .min(usize::try_from(n).unwrap_or(usize::MAX))
            }),
            max_file_bytes: self
                .max_file_bytes
                .map_or(caps.max_file_bytes, |n| caps.max_file_bytes.min(n)),
            max_total_bytes: self
                .max_total_bytes
                .map_or(caps.max_total_bytes, |n| caps.max_total_bytes.min(n)),
            max_original_bytes: self
                .max_original_bytes
                .map_or(caps.max_original_bytes, |n| caps.max_original_bytes.min(n)),
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    #[serde(default)]
    limits: RawLimitTable,
    #[serde(default)]
    defaults: RawLimitTable,
    #[serde(default)]
    changeset: RawChangeset,
    #[serde(default)]
    plugins: RawPlugins,
}

type Value = Option<Spanned<u64>>;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawLimitTable {
    timeout_ms: Value,
    memory_mb: Value,
    fuel: Value,
    log_lines: Value,
    log_bytes: Value,
    table_elements: Value,
    leases: Value,
    lease_handles: Value,
    transfer_bytes: Value,
    title_bytes: Value,
    summary_bytes: Value,
    steps: Value,
    proposal_bytes: Value,
    resource_handles: Value,
    random_bytes: Value,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawChangeset {
    max_files: Value,
    max_file_bytes: Value,
    max_total_bytes: Value,
    max_original_bytes: Value,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawPlugins {
    #[serde(default)]
    allow: Vec<Spanned<String>>,
}

/// A value the policy refuses: where it is and why.
type Refusal = (Range<usize>, String);

impl RawPolicy {
    /// The first value out of range, checking `[limits]`, `[defaults]`,
    /// `[changeset]` and `[plugins]` in that order.
    fn check(&self) -> Result<(), Refusal> {
        self.limits.check("limits")?;
        self.defaults.check("defaults")?;
        self.changeset.check()?;
        self.plugins.check()
    }
}

impl RawChangeset {
    /// Every value with its key.
    fn values(&self) -> [(&'static str, &Value); 4] {
        [
            ("max_files", &self.max_files),
            ("max_file_bytes", &self.max_file_bytes),
            ("max_total_bytes", &self.max_total_bytes),
            ("max_original_bytes", &self.max_original_bytes),
        ]
    }

    /// No cap may be zero.
    fn check(&self) -> Result<(), Refusal> {
        for (key, value) in self.values() {
            if let Some(v) = value.as_ref().filter(|v| *v.get_ref() == 0) {
                return Err((
                    v.span(),
                    format!("`changeset.{key}` must be greater than 0"),
                ));
            }
        }
        Ok(())
    }

    /// The caps this table sets, if it sets any.
    fn caps(&self) -> Option<ChangeCaps> {
        let get = |v: &Value| v.as_ref().map(|v| *v.get_ref());
        self.values()
            .iter()
            .any(|(_, v)| v.is_some())
            .then(|| ChangeCaps {
                max_files: get(&self.max_files),
                max_file_bytes: get(&self.max_file_bytes),
                max_total_bytes: get(&self.max_total_bytes),
                max_original_bytes: get(&self.max_original_bytes),
            })
    }
}

impl RawPlugins {
    /// Every allowed name must be a plugin name.
    fn check(&self) -> Result<(), Refusal> {
        match self.allow.iter().find(|name| !is_valid_name(name.get_ref())) {
            Some(name) => Err((
                name.span(),
                format!(
                    "{:?} in `plugins.allow` is not a plugin name: use 1-64 lowercase letters, digits, `-` or `_`",
                    name.get_ref()
                ),
            )),
            None => Ok(()),
        }
    }
}

impl RawLimitTable {
    /// Every value with its key, for checks.
    fn values(&self) -> [(&'static str, &Value); 15] {
        [
            ("timeout_ms", &self.timeout_ms),
            ("memory_mb", &self.memory_mb),
            ("fuel", &self.fuel),
            ("log_lines", &self.log_lines),
            ("log_bytes", &self.log_bytes),
            ("table_elements", &self.table_elements),
            ("leases", &self.leases),
            ("lease_handles", &self.lease_handles),
            ("transfer_bytes", &self.transfer_bytes),
            ("title_bytes", &self.title_bytes),
            ("summary_bytes", &self.summary_bytes),
            ("steps", &self.steps),
            ("proposal_bytes", &self.proposal_bytes),
            ("resource_handles", &self.resource_handles),
            ("random_bytes", &self.random_bytes),
        ]
    }

    /// No value may be zero, and `memory_mb` at most what an instance can
    /// address; `table` names the table in messages.
    fn check(&self, table: &str) -> Result<(), Refusal> {
        for (key, value) in self.values() {
            let Some(v) = value else { continue };
            if *v.get_ref() == 0 {
                return Err((
                    v.span(),
                    format!("`{table}.{key}` must be greater than 0 (leave it out to keep the host's value)"),
                ));
            }
            if key == "memory_mb" && *v.get_ref() > MAX_MEMORY_MB {
                return Err((
                    v.span(),
                    format!("`{table}.memory_mb` may be at most {MAX_MEMORY_MB} (a WebAssembly instance addresses at most 4 GiB)"),
                ));
            }
        }
        Ok(())
    }

    /// `base` with every value this table sets replaced.
    fn over(&self, base: Limits) -> Limits {
        let get = |v: &Value| v.as_ref().map(|v| *v.get_ref());
        let size =
            |v: &Value, d: usize| get(v).map_or(d, |n| usize::try_from(n).unwrap_or(usize::MAX));
        Limits {
            timeout: get(&self.timeout_ms).map_or(base.timeout, std::time::Duration::from_millis),
            memory_bytes: get(&self.memory_mb).map_or(base.memory_bytes, |mb| mb * MIB),
            fuel: get(&self.fuel).or(base.fuel),
            log_lines: get(&self.log_lines).unwrap_or(base.log_lines),
            log_bytes: get(&self.log_bytes).unwrap_or(base.log_bytes),
            table_elements: get(&self.table_elements).unwrap_or(base.table_elements),
            leases: size(&self.leases, base.leases),
            lease_handles: size(&self.lease_handles, base.lease_handles),
            transfer_bytes: get(&self.transfer_bytes).unwrap_or(base.transfer_bytes),
            title_bytes: get(&self.title_bytes).unwrap_or(base.title_bytes),
            summary_bytes: get(&self.summary_bytes).unwrap_or(base.summary_bytes),
            steps: get(&self.steps).unwrap_or(base.steps),
            proposal_bytes: get(&self.proposal_bytes).unwrap_or(base.proposal_bytes),
            resource_handles: size(&self.resource_handles, base.resource_handles),
            random_bytes: get(&self.random_bytes).unwrap_or(base.random_bytes),
        }
    }
}

impl Policy {
    /// Read and check the policy file at `path`.
    pub fn read(path: &Path) -> Result<Policy, PolicyError> {
        let text = std::fs::read_to_string(path).map_err(|source| PolicyError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Policy::parse(path, &text)
    }

    /// The policy file in the user's config directory, if there is one
    /// (`Ok(None)` when there is no such file).
    pub fn read_default() -> Result<Option<Policy>, PolicyError> {
        match super::userdir::user_config_dir().map(|d| d.join(POLICY_FILE)) {
            Some(path) if path.exists() => Policy::read(&path).map(Some),
            _ => Ok(None),
        }
    }

    /// Parse and check policy `text`, read from `path`.
    pub fn parse(path: &Path, text: &str) -> Result<Policy, PolicyError> {
        let raw: RawPolicy = toml::from_str(text).map_err(|e| {
            PolicyError::invalid(path, text, e.span(), e.message().trim().to_string())
        })?;
        raw.check()
            .map_err(|(span, msg)| PolicyError::invalid(path, text, Some(span), msg))?;
        let max = raw.limits.over(Limits::MAX);
        // A default the operator did not set follows a lowered ceiling.
        let default = raw.defaults.over(Limits::DEFAULT.clamp_to(&max));
        Ok(Policy {
            limits: LimitsPolicy { default, max },
            allow: raw
                .plugins
                .allow
                .into_iter()
                .map(Spanned::into_inner)
                .collect(),
            changes: raw.changeset.caps(),
            source: path.to_path_buf(),
        })
    }

    /// Put this policy into a configuration: its limits and allow-list
    /// replace the plugin settings, its changeset caps lower `changes`
    /// (see [`Config::apply_policy`](crate::Config::apply_policy)).
    pub fn apply(&self, plugins: &mut PluginsConfig, changes: &mut ChangeLimits) {
        plugins.limits = self.limits;
        plugins.allow = self.allow.clone();
        plugins.policy_source = Some(self.source.clone());
        if let Some(caps) = &self.changes {
            *changes = caps.clamp(*changes);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::plugins::RequestedLimits;

    fn parse(text: &str) -> Result<Policy, PolicyError> {
        Policy::parse(Path::new("/etc/lockstep.toml"), text)
    }

    #[test]
    fn an_empty_file_is_the_built_in_policy() {
        let p = parse("").unwrap();
        assert_eq!(p.limits, LimitsPolicy::default());
        assert!(p.allow.is_empty());
        assert_eq!(p.changes, None);
    }

    #[test]
    fn a_manifest_cannot_raise_its_limits_above_the_policy() {
        let p =
            parse("[limits]\ntimeout_ms = 2000\nmemory_mb = 64\nsummary_bytes = 100\n").unwrap();
        let granted = p.limits.resolve(&RequestedLimits {
            timeout_ms: Some(300_000),
            memory_mb: Some(4096),
            fuel: None,
        });
        assert_eq!(granted.timeout, Duration::from_secs(2));
        assert_eq!(granted.memory_bytes, 64 * MIB);
        assert_eq!(granted.summary_bytes, 100);
        // Defaults above a lowered ceiling follow it down.
        let default = p.limits.resolve(&RequestedLimits::default());
        assert_eq!(default.timeout, Duration::from_secs(2));
        assert_eq!(default.memory_bytes, 64 * MIB);
        // A request below the ceiling is granted as asked.
        let small = p.limits.resolve(&RequestedLimits {
            timeout_ms: Some(500),
            ..Default::default()
        });
        assert_eq!(small.timeout, Duration::from_millis(500));
    }

    #[test]
    fn defaults_and_fuel_come_from_the_file() {
        let p = parse("[limits]\nfuel = 1000\n[defaults]\ntimeout_ms = 3000\nfuel = 10\n").unwrap();
        assert!(p.limits.fuel_enabled());
        let l = p.limits.resolve(&RequestedLimits::default());
        assert_eq!((l.timeout, l.fuel), (Duration::from_secs(3), Some(10)));
    }

    #[test]
    fn changeset_caps_only_lower() {
        let p = parse("[changeset]\nmax_files = 10\nmax_file_bytes = 999999999999\n").unwrap();
        let caps = p.changes.unwrap().clamp(ChangeLimits::default());
        assert_eq!(caps.max_changes, 10);
        assert_eq!(caps.max_file_bytes, ChangeLimits::default().max_file_bytes);
    }

    #[test]
    fn an_unknown_key_names_the_file_and_line() {
        let e = parse("[limits]\ntimeout_ms = 10\nmemroy_mb = 5\n").unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.starts_with("/etc/lockstep.toml:3:1: unknown field `memroy_mb`"),
            "{msg}"
        );
        assert!(msg.contains("3 | memroy_mb = 5"), "{msg}");
        let e = parse("[plugin]\nallow = []\n").unwrap_err().to_string();
        assert!(e.starts_with("/etc/lockstep.toml:1:"), "{e}");
    }

    #[test]
    fn bad_values_are_refused_where_they_are() {
        let e = parse("[limits]\nsteps = 0\n").unwrap_err().to_string();
        assert!(
            e.starts_with("/etc/lockstep.toml:2:9: `limits.steps` must be greater than 0"),
            "{e}"
        );
        let e = parse("[defaults]\nmemory_mb = 8192\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("at most 4096"), "{e}");
        let e = parse("[plugins]\nallow = [\"Bad Name\"]\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("/etc/lockstep.toml:2:10: \"Bad Name\" in `plugins.allow`"),
            "{e}"
        );
        let e = parse("[limits]\ntimeout_ms = \"5s\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("/etc/lockstep.toml:2:14: invalid type"),
            "{e}"
        );
    }

    #[test]
    fn a_zero_changeset_cap_is_refused_and_limit_tables_are_checked_first() {
        let e = parse("[changeset]\nmax_files = 10\nmax_total_bytes = 0\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with(
                "/etc/lockstep.toml:3:19: `changeset.max_total_bytes` must be greater than 0"
            ),
            "{e}"
        );
        let e = parse(
            "[changeset]\nmax_files = 0\n[plugins]\nallow = [\"A\"]\n[defaults]\nsteps = 0\n",
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.starts_with("/etc/lockstep.toml:6:9: `defaults.steps` must be greater than 0"),
            "{e}"
        );
    }

    #[test]
    fn the_policy_is_applied_to_a_config() {
        let p = parse("[limits]\nmemory_mb = 32\n[plugins]\nallow = [\"replace\"]\n[changeset]\nmax_total_bytes = 1000\nmax_original_bytes = 2000\n").unwrap();
        let (mut plugins, mut changes) = (PluginsConfig::default(), ChangeLimits::default());
        p.apply(&mut plugins, &mut changes);
        assert_eq!(plugins.limits.max.memory_bytes, 32 * MIB);
        assert_eq!(plugins.allow, vec!["replace".to_string()]);
        assert_eq!(
            plugins.policy_source.as_deref(),
            Some(Path::new("/etc/lockstep.toml"))
        );
        assert_eq!(changes.max_total_bytes, 1000);
        assert_eq!(changes.max_original_bytes, 2000);
    }
}
