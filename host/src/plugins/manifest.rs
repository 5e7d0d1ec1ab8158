//! The `plugin.toml` manifest that sits beside each component: its name,
//! version, kind, the WIT API version it was built against, and the limits
//! it asks for.
//!
//! ```toml
//! name = "license-header"
//! version = "0.1.0"
//! kind = "plugin"   # strategist | executor | plugin
//! api = "0.1.0"     # version of the lockstep:plugin WIT package
//! description = "..."
//! [limits]          # optional; clamped by the operator's policy
//! timeout_ms = 10000
//! memory_mb = 64
//! fuel = 1000000
//! ```
//!
//! Errors name the file, line and column, like the TOML parser's own.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use super::limits::RequestedLimits;

/// What a plugin may be used as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PluginKind {
    /// Only proposes plans (exports `strategy`).
    Strategist,
    /// Only carries out steps (exports `execution`).
    Executor,
    /// Both.
    Plugin,
}

impl PluginKind {
    /// Whether a plugin of this kind may serve as `role`.
    pub fn allows(self, role: Role) -> bool {
        matches!(
            (self, role),
            (PluginKind::Plugin, _)
                | (PluginKind::Strategist, Role::Strategist)
                | (PluginKind::Executor, Role::Executor)
        )
    }

    /// The manifest spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            PluginKind::Strategist => "strategist",
            PluginKind::Executor => "executor",
            PluginKind::Plugin => "plugin",
        }
    }
}

impl fmt::Display for PluginKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The part a plugin plays in one lookup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Called during Strategize.
    Strategist,
    /// Called during Execute.
    Executor,
}

impl Role {
    /// `strategist` or `executor`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Strategist => "strategist",
            Role::Executor => "executor",
        }
    }
}

/// A `major.minor.patch` version (pre-release and build suffixes are kept
/// only for display).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ApiVersion {
    /// Major.
    pub major: u64,
    /// Minor.
    pub minor: u64,
    /// Patch.
    pub patch: u64,
}

impl ApiVersion {
    /// Parse `1.2.3` (a `-pre`/`+build` suffix is accepted and ignored).
    pub fn parse(s: &str) -> Option<ApiVersion> {
        let core = s.split(['-', '+']).next()?;
        let mut parts = core.split('.');
        let mut next = || {
            parts
                .next()
                .filter(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))?
                .parse()
                .ok()
        };
        let v = ApiVersion {
            major: next()?,
            minor: next()?,
            patch: next()?,
        };
        if parts.next().is_some() {
            return None;
        }
        Some(v)
    }

    /// Whether components built against `self` can be loaded by a host built
    /// against `host`: the same semver line (same major, or same minor while
    /// the major is 0). Whether every import is actually provided is checked
    /// when the component is linked.
    pub fn is_compatible_with(&self, host: &ApiVersion) -> bool {
        if host.major == 0 {
            self.major == 0 && self.minor == host.minor
        } else {
            self.major == host.major
        }
    }

    /// The semver line, e.g. `0.1.x` or `1.x`.
    pub fn line(&self) -> String {
        if self.major == 0 {
            format!("0.{}.x", self.minor)
        } else {
            format!("{}.x", self.major)
        }
    }
}

impl fmt::Display for ApiVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// A parsed and validated manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    /// The name actions refer to (`strategy = "..."`, `executor = "..."`).
    pub name: String,
    /// The plugin's own version.
    pub version: String,
    /// What it may be used as.
    pub kind: PluginKind,
    /// The `lockstep:plugin` WIT version it was built against.
    pub api: ApiVersion,
    /// One line for humans.
    pub description: String,
    /// Keep one instance for all the calls of a phase instead of a fresh
    /// one per call (worth it for components that are slow to instantiate;
    /// the plugin must not rely on a clean state between steps).
    pub reuse_instance: bool,
    /// The limits it asks for.
    pub limits: RequestedLimits,
}

/// Why a manifest was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{}: {message}{}", path.display(), location.as_ref().map(|(l, c)| format!(":{l}:{c}")).unwrap_or_default(), snippet.as_ref().map(|s| format!("\n{s}")).unwrap_or_default())]
pub struct ManifestError {
    /// The manifest file.
    pub path: PathBuf,
    /// 1-based line and column, when the problem has a place.
    pub location: Option<(usize, usize)>,
    /// What is wrong and what is expected.
    pub message: String,
    /// The offending line with a caret under the problem.
    snippet: Option<String>,
}

impl ManifestError {
    /// A problem with the file as a whole (unreadable, missing).
    pub fn whole_file(path: &Path, message: impl Into<String>) -> Self {
        ManifestError {
            path: path.to_path_buf(),
            location: None,
            message: message.into(),
            snippet: None,
        }
    }

    fn new(
        path: &Path,
        text: &str,
        span: Option<Range<usize>>,
        message: impl Into<String>,
    ) -> Self {
        let (location, snippet) = match span {
            Some(span) => {
                let (line, col, snippet) = locate(text, span);
                (Some((line, col)), Some(snippet))
            }
            None => (None, None),
        };
        ManifestError {
            path: path.to_path_buf(),
            location,
            message: message.into(),
            snippet,
        }
    }
}

/// Line, column (1-based) and a one-line snippet with a caret for `span`.
pub(super) fn locate(text: &str, span: Range<usize>) -> (usize, usize, String) {
    let start = span.start.min(text.len());
    let line_start = text[..start].rfind('\n').map(|i| i + 1).unwrap_or(0);
    let line_end = text[start..]
        .find('\n')
        .map(|i| start + i)
        .unwrap_or(text.len());
    let line_no = text[..start].matches('\n').count() + 1;
    let col = text[line_start..start].chars().count() + 1;
    let line_text = &text[line_start..line_end];
    let width = text[start..span.end.clamp(start, line_end)]
        .chars()
        .count()
        .max(1);
    let gutter = line_no.to_string();
    let snippet = format!(
        "{pad} |\n{gutter} | {line_text}\n{pad} | {spaces}{carets}",
        pad = " ".repeat(gutter.len()),
        spaces = " ".repeat(col - 1),
        carets = "^".repeat(width)
    );
    (line_no, col, snippet)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawManifest {
    name: Spanned<String>,
    version: Spanned<String>,
    kind: PluginKind,
    api: Spanned<String>,
    #[serde(default)]
    description: String,
    #[serde(default)]
    reuse_instance: bool,
    #[serde(default)]
    limits: RawLimits,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    timeout_ms: Option<Spanned<u64>>,
    memory_mb: Option<Spanned<u64>>,
    fuel: Option<Spanned<u64>>,
}

/// Whether `name` is a valid plugin name: 1–64 of `a-z 0-9 - _`, starting
/// with a letter or digit.
pub fn is_valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        && name.as_bytes()[0].is_ascii_alphanumeric()
}

/// Parse and validate the manifest text read from `path`.
pub fn parse(path: &Path, text: &str) -> Result<Manifest, ManifestError> {
    let raw: RawManifest = toml::from_str(text)
        .map_err(|e| ManifestError::new(path, text, e.span(), e.message().trim()))?;
    let err = |span: Range<usize>, msg: String| ManifestError::new(path, text, Some(span), msg);

    if !is_valid_name(raw.name.get_ref()) {
        return Err(err(
            raw.name.span(),
            format!(
                "invalid plugin name {:?}: use 1-64 lowercase letters, digits, `-` or `_`",
                raw.name.get_ref()
            ),
        ));
    }
    if raw.version.get_ref().trim().is_empty() || ApiVersion::parse(raw.version.get_ref()).is_none()
    {
        return Err(err(
            raw.version.span(),
            format!(
                "invalid version {:?}: expected `major.minor.patch`",
                raw.version.get_ref()
            ),
        ));
    }
    let api = ApiVersion::parse(raw.api.get_ref()).ok_or_else(|| {
        err(
            raw.api.span(),
            format!("invalid api version {:?}: expected the lockstep:plugin WIT version, e.g. \"0.1.0\"", raw.api.get_ref()),
        )
    })?;
    for (key, value) in [
        ("timeout_ms", &raw.limits.timeout_ms),
        ("memory_mb", &raw.limits.memory_mb),
        ("fuel", &raw.limits.fuel),
    ] {
        if let Some(v) = value {
            if *v.get_ref() == 0 {
                return Err(err(
                    v.span(),
                    format!(
                        "`limits.{key}` must be greater than 0 (leave it out to use the default)"
                    ),
                ));
            }
        }
    }
    Ok(Manifest {
        name: raw.name.into_inner(),
        version: raw.version.into_inner(),
        kind: raw.kind,
        api,
        description: raw.description.trim().to_string(),
        reuse_instance: raw.reuse_instance,
        limits: RequestedLimits {
            timeout_ms: raw.limits.timeout_ms.map(Spanned::into_inner),
            memory_mb: raw.limits.memory_mb.map(Spanned::into_inner),
            fuel: raw.limits.fuel.map(Spanned::into_inner),
        },
    })
}

/// Read and parse the manifest at `path`.
pub fn read(path: &Path) -> Result<Manifest, ManifestError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ManifestError::whole_file(path, e.to_string()))?;
    parse(path, &text)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
name = "license-header"
version = "0.1.0"
kind = "plugin"
api = "0.1.0"
description = "Adds headers."

[limits]
timeout_ms = 10000
memory_mb = 64
"#;

    fn parse_str(text: &str) -> Result<Manifest, ManifestError> {
        parse(Path::new("p/plugin.toml"), text)
    }

    #[test]
    fn parses_a_full_manifest() {
        let m = parse_str(GOOD).unwrap();
        assert_eq!(m.name, "license-header");
        assert_eq!(m.kind, PluginKind::Plugin);
        assert_eq!(
            m.api,
            ApiVersion {
                major: 0,
                minor: 1,
                patch: 0
            }
        );
        assert_eq!(
            m.limits,
            RequestedLimits {
                timeout_ms: Some(10_000),
                memory_mb: Some(64),
                fuel: None
            }
        );
    }

    #[test]
    fn errors_name_the_line_and_column() {
        let e = parse_str(&GOOD.replace("kind = \"plugin\"", "kind = \"plug\"")).unwrap_err();
        assert_eq!(e.location, Some((4, 8)), "{e}");
        assert!(
            e.to_string()
                .starts_with("p/plugin.toml:4:8: unknown variant `plug`"),
            "{e}"
        );
        assert!(e.to_string().contains("4 | kind = \"plug\""), "{e}");

        let e = parse_str(&GOOD.replace("\"license-header\"", "\"License Header\"")).unwrap_err();
        assert_eq!(e.location, Some((2, 8)), "{e}");
        assert!(e.message.contains("invalid plugin name"), "{e}");

        let e = parse_str(&GOOD.replace("api = \"0.1.0\"", "api = \"latest\"")).unwrap_err();
        assert_eq!(e.location, Some((5, 7)), "{e}");

        let e = parse_str(&GOOD.replace("memory_mb = 64", "memory_mb = 0")).unwrap_err();
        assert_eq!(e.location, Some((10, 13)), "{e}");

        let e = parse_str(&GOOD.replace("timeout_ms", "timout_ms")).unwrap_err();
        assert!(e.message.contains("unknown field `timout_ms`"), "{e}");

        let e = parse_str("name = \"x\"\n").unwrap_err();
        assert!(e.message.contains("missing field"), "{e}");
    }

    #[test]
    fn kinds_allow_roles() {
        assert!(PluginKind::Plugin.allows(Role::Executor));
        assert!(PluginKind::Strategist.allows(Role::Strategist));
        assert!(!PluginKind::Strategist.allows(Role::Executor));
        assert!(!PluginKind::Executor.allows(Role::Strategist));
    }

    #[test]
    fn api_versions_follow_semver() {
        let host = ApiVersion::parse("0.1.3").unwrap();
        assert!(ApiVersion::parse("0.1.0")
            .unwrap()
            .is_compatible_with(&host));
        assert!(ApiVersion::parse("0.1.3")
            .unwrap()
            .is_compatible_with(&host));
        assert!(ApiVersion::parse("0.1.4")
            .unwrap()
            .is_compatible_with(&host));
        assert!(!ApiVersion::parse("0.2.0")
            .unwrap()
            .is_compatible_with(&host));
        assert!(!ApiVersion::parse("1.0.0")
            .unwrap()
            .is_compatible_with(&host));
        assert_eq!(ApiVersion::parse("1.2"), None);
        assert_eq!(ApiVersion::parse("1.2.3-rc1").unwrap().to_string(), "1.2.3");
    }
}
