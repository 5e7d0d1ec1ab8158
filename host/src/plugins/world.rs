//! What a component is, read from its type before it is instantiated: which
//! `lockstep:plugin` version and world it was built for, and which imports
//! this host cannot provide. Every refusal names what is missing.
//!
//! The host serves every released minor of the current major
//! ([`SUPPORTED_APIS`]); the version a component was built against is read
//! from its export names (`lockstep:plugin/strategy@0.1.0`) and picks the
//! bindings it is called through (`bindings/`).

use std::path::Path;

use wasmtime::component::Component;
use wasmtime::Engine;

use super::bindings::Api;
use super::manifest::{ApiVersion, Role};

/// The `lockstep:plugin` package this host implements.
pub const PACKAGE: &str = "lockstep:plugin";
/// The newest WIT version this host implements: what new plugins should be
/// built against.
pub const HOST_API: ApiVersion = Api::LATEST.version();
/// Every WIT version this host loads plugins of, oldest first; each stands
/// for its line (`0.1.0` for `0.1.x`).
pub const SUPPORTED_APIS: [ApiVersion; 2] = [Api::V0_1.version(), Api::V0_2.version()];
/// WASI packages the host links (at 0.2.x), without ambient authority.
const WASI_PACKAGES: &[&str] = &[
    "wasi:io",
    "wasi:clocks",
    "wasi:random",
    "wasi:cli",
    "wasi:filesystem",
    "wasi:sockets",
];

/// `namespace:package/interface@version`, split.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InterfaceName {
    /// `namespace:package`.
    pub package: String,
    /// The interface.
    pub interface: String,
    /// The package version, if the name carries one.
    pub version: Option<ApiVersion>,
}

impl InterfaceName {
    /// Split an import or export name; `None` for plain names (`run`, `f`).
    pub fn parse(name: &str) -> Option<InterfaceName> {
        let (path, version) = match name.split_once('@') {
            Some((path, v)) => (path, Some(ApiVersion::parse(v)?)),
            None => (name, None),
        };
        let (package, interface) = path.split_once('/')?;
        package.contains(':').then(|| InterfaceName {
            package: package.to_string(),
            interface: interface.to_string(),
            version,
        })
    }
}

/// The names a component imports and exports.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Shape {
    /// Import names, in the component's order.
    pub imports: Vec<String>,
    /// Export names, in the component's order.
    pub exports: Vec<String>,
}

/// What a component offers for each role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoleExport {
    /// A compatible export, by full name.
    Found(String),
    /// The interface is exported, but at a version this host cannot call.
    Incompatible(String, ApiVersion),
    /// Not exported at all.
    Missing,
}

impl Shape {
    /// Read the shape of `component`.
    pub fn of(engine: &Engine, component: &Component) -> Shape {
        let ty = component.component_type();
        Shape {
            imports: ty
                .imports(engine)
                .map(|(name, _)| name.to_string())
                .collect(),
            exports: ty
                .exports(engine)
                .map(|(name, _)| name.to_string())
                .collect(),
        }
    }

    /// The `lockstep:plugin` version the component was built against, read
    /// from its exports, else from its imports.
    pub fn api_version(&self) -> Option<ApiVersion> {
        let of = |names: &[String]| {
            names
                .iter()
                .filter_map(|n| InterfaceName::parse(n))
                .filter(|n| n.package == PACKAGE)
                .find_map(|n| n.version)
        };
        of(&self.exports).or_else(|| of(&self.imports))
    }

    /// The export serving `role`.
    pub fn role_export(&self, role: Role) -> RoleExport {
        let wanted = interface_for(role);
        let mut incompatible = None;
        for name in &self.exports {
            let Some(parsed) = InterfaceName::parse(name) else {
                continue;
            };
            if parsed.package != PACKAGE || parsed.interface != wanted {
                continue;
            }
            match parsed.version {
                Some(v) if Api::of(&v).is_some() => return RoleExport::Found(name.clone()),
                Some(v) => incompatible = Some(RoleExport::Incompatible(name.clone(), v)),
                None => {
                    incompatible = Some(RoleExport::Incompatible(
                        name.clone(),
                        ApiVersion {
                            major: 0,
                            minor: 0,
                            patch: 0,
                        },
                    ))
                }
            }
        }
        incompatible.unwrap_or(RoleExport::Missing)
    }

    /// The supported version whose bindings serve `role`, if the component
    /// has a compatible export for it.
    pub fn role_api(&self, role: Role) -> Option<Api> {
        match self.role_export(role) {
            RoleExport::Found(name) => Api::of(&InterfaceName::parse(&name)?.version?),
            _ => None,
        }
    }

    /// Imports this host does not provide (by name; the linker also checks
    /// their types).
    pub fn unprovided_imports(&self) -> Vec<String> {
        self.imports
            .iter()
            .filter(|name| !is_provided(name))
            .cloned()
            .collect()
    }

    /// A best guess at the world the component targets, for humans.
    pub fn world_guess(&self) -> String {
        let strategy = matches!(self.role_export(Role::Strategist), RoleExport::Found(_));
        let execution = matches!(self.role_export(Role::Executor), RoleExport::Found(_));
        let ours = |n: &String| InterfaceName::parse(n).is_some_and(|n| n.package == PACKAGE);
        match (strategy, execution) {
            (true, true) => format!(
                "{PACKAGE}/plugin@{}",
                self.api_version().unwrap_or(HOST_API)
            ),
            (true, false) => format!(
                "{PACKAGE}/strategist@{}",
                self.api_version().unwrap_or(HOST_API)
            ),
            (false, true) => format!(
                "{PACKAGE}/executor@{}",
                self.api_version().unwrap_or(HOST_API)
            ),
            _ if self.exports.iter().any(ours) => {
                format!(
                    "{PACKAGE} world at an unsupported version ({})",
                    self.api_version()
                        .map(|v| v.to_string())
                        .unwrap_or_default()
                )
            }
            _ => match self.exports.iter().find(|e| e.starts_with("wasi:cli/run@")) {
                Some(run) => format!("wasi:cli/command (exports {run})"),
                None if self
                    .exports
                    .iter()
                    .any(|e| e.starts_with("wasi:http/incoming-handler@")) =>
                {
                    "wasi:http/proxy".into()
                }
                None => "unknown".into(),
            },
        }
    }

    /// Why the component cannot serve as `role`, or `None` if it can.
    /// `file` names it in the message.
    pub fn role_problem(&self, role: Role, file: &Path) -> Option<String> {
        let file = file
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_else(|| file.display().to_string());
        let wanted = format!(
            "{PACKAGE}/{} ({})",
            interface_for(role),
            supported_lines(" or ")
        );
        match self.role_export(role) {
            RoleExport::Found(_) => None,
            RoleExport::Incompatible(name, version) => Some(format!(
                "`{file}` was built against {PACKAGE}@{version} (it exports {name}), {}",
                unsupported(&version)
            )),
            RoleExport::Missing => {
                let other = match role {
                    Role::Strategist => Role::Executor,
                    Role::Executor => Role::Strategist,
                };
                if let RoleExport::Found(name) = self.role_export(other) {
                    Some(format!(
                        "`{file}` is a lockstep {} only: it exports {name} but not {wanted}, so it cannot be used as {} {}",
                        other.as_str(),
                        article(role),
                        role.as_str()
                    ))
                } else if self.exports.is_empty() {
                    Some(format!(
                        "`{file}` is not a lockstep plugin: it exports nothing, not even {wanted}"
                    ))
                } else {
                    Some(format!(
                        "`{file}` is not a lockstep plugin: it exports {} but not {wanted}",
                        self.exports.join(", ")
                    ))
                }
            }
        }
    }
}

/// The supported lines, e.g. `0.1.x and 0.2.x` (joined by `last`).
pub fn supported_lines(last: &str) -> String {
    let lines: Vec<String> = SUPPORTED_APIS.iter().map(ApiVersion::line).collect();
    match lines.split_last() {
        Some((newest, [])) => newest.clone(),
        Some((newest, older)) => format!("{}{last}{newest}", older.join(", ")),
        None => String::new(),
    }
}

/// Whether plugins built against `version` can be loaded.
pub fn supports(version: &ApiVersion) -> bool {
    Api::of(version).is_some()
}

/// The end of a refusal of a plugin built against `version`, which this host
/// does not support: what the host supports and what to do.
pub fn unsupported(version: &ApiVersion) -> String {
    let supported = format!("{PACKAGE} {}", supported_lines(" and "));
    if *version > HOST_API {
        format!(
            "which is newer than this host: it supports {supported}. \
             Upgrade lockstep, or build the plugin against {PACKAGE}@{HOST_API}"
        )
    } else {
        format!(
            "which this host does not support: it supports {supported}. \
             Rebuild the plugin against {PACKAGE}@{HOST_API}"
        )
    }
}

fn article(role: Role) -> &'static str {
    match role {
        Role::Strategist => "a",
        Role::Executor => "an",
    }
}

/// The exported interface serving `role`.
pub fn interface_for(role: Role) -> &'static str {
    match role {
        Role::Strategist => "strategy",
        Role::Executor => "execution",
    }
}

fn is_provided(name: &str) -> bool {
    let Some(n) = InterfaceName::parse(name) else {
        return false;
    };
    if n.package == PACKAGE {
        return n
            .version
            .and_then(|v| Api::of(&v))
            .is_some_and(|api| api.interfaces().contains(&n.interface.as_str()));
    }
    WASI_PACKAGES.contains(&n.package.as_str())
        && n.version.is_some_and(|v| v.major == 0 && v.minor == 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(imports: &[&str], exports: &[&str]) -> Shape {
        Shape {
            imports: imports.iter().map(|s| s.to_string()).collect(),
            exports: exports.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn names_are_split() {
        let n = InterfaceName::parse("lockstep:plugin/strategy@0.2.0").unwrap();
        assert_eq!(
            (n.package.as_str(), n.interface.as_str()),
            ("lockstep:plugin", "strategy")
        );
        assert_eq!(n.version, Some(HOST_API));
        assert_eq!(InterfaceName::parse("run"), None);
    }

    #[test]
    fn a_command_component_is_refused_by_name() {
        let s = shape(&["wasi:cli/stdout@0.2.6"], &["wasi:cli/run@0.2.6"]);
        let msg = s
            .role_problem(Role::Executor, Path::new("/x/wrong-world.wasm"))
            .unwrap();
        assert_eq!(
            msg,
            "`wrong-world.wasm` is not a lockstep plugin: it exports wasi:cli/run@0.2.6 but not lockstep:plugin/execution (0.1.x or 0.2.x)"
        );
        assert_eq!(
            s.world_guess(),
            "wasi:cli/command (exports wasi:cli/run@0.2.6)"
        );
        assert!(s.unprovided_imports().is_empty());
    }

    #[test]
    fn a_newer_major_is_refused_with_both_versions() {
        let s = shape(
            &["lockstep:plugin/log@1.0.0"],
            &["lockstep:plugin/strategy@1.0.0"],
        );
        let msg = s
            .role_problem(Role::Strategist, Path::new("p.wasm"))
            .unwrap();
        assert_eq!(
            msg,
            "`p.wasm` was built against lockstep:plugin@1.0.0 (it exports lockstep:plugin/strategy@1.0.0), \
             which is newer than this host: it supports lockstep:plugin 0.1.x and 0.2.x. \
             Upgrade lockstep, or build the plugin against lockstep:plugin@0.2.0"
        );
        assert_eq!(s.unprovided_imports(), vec!["lockstep:plugin/log@1.0.0"]);
        assert_eq!(s.role_api(Role::Strategist), None);
    }

    #[test]
    fn an_unreleased_minor_is_refused_as_newer() {
        let s = shape(
            &["lockstep:plugin/progress@0.3.0"],
            &["lockstep:plugin/execution@0.3.0"],
        );
        let msg = s.role_problem(Role::Executor, Path::new("p.wasm")).unwrap();
        assert!(
            msg.starts_with("`p.wasm` was built against lockstep:plugin@0.3.0 (it exports lockstep:plugin/execution@0.3.0), which is newer than this host"),
            "{msg}"
        );
        assert!(
            msg.contains("it supports lockstep:plugin 0.1.x and 0.2.x"),
            "{msg}"
        );
        let old = shape(&[], &["lockstep:plugin/execution@0.0.1"]);
        let msg = old
            .role_problem(Role::Executor, Path::new("p.wasm"))
            .unwrap();
        assert!(msg.contains("which this host does not support"), "{msg}");
    }

    #[test]
    fn every_supported_version_is_served_by_its_own_bindings() {
        let old = shape(
            &["lockstep:plugin/log@0.1.0"],
            &[
                "lockstep:plugin/strategy@0.1.0",
                "lockstep:plugin/execution@0.1.0",
            ],
        );
        assert_eq!(old.role_api(Role::Strategist), Some(Api::V0_1));
        assert_eq!(old.role_api(Role::Executor), Some(Api::V0_1));
        assert_eq!(old.world_guess(), "lockstep:plugin/plugin@0.1.0");
        let new = shape(
            &["lockstep:plugin/progress@0.2.0"],
            &["lockstep:plugin/execution@0.2.1"],
        );
        assert_eq!(new.role_api(Role::Executor), Some(Api::V0_2));
        assert!(new.unprovided_imports().is_empty());
        // `progress` arrived in 0.2.0: a 0.1 component cannot import it.
        let s = shape(&["lockstep:plugin/progress@0.1.0"], &[]);
        assert_eq!(
            s.unprovided_imports(),
            vec!["lockstep:plugin/progress@0.1.0"]
        );
        assert_eq!(supported_lines(" or "), "0.1.x or 0.2.x");
        assert!(supports(&ApiVersion::parse("0.1.3").unwrap()));
        assert!(!supports(&ApiVersion::parse("0.3.0").unwrap()));
    }

    #[test]
    fn roles_follow_exports() {
        let s = shape(&[], &["lockstep:plugin/strategy@0.1.2"]);
        assert_eq!(s.role_problem(Role::Strategist, Path::new("s.wasm")), None);
        let msg = s.role_problem(Role::Executor, Path::new("s.wasm")).unwrap();
        assert!(msg.contains("is a lockstep strategist only"), "{msg}");
        assert_eq!(s.world_guess(), "lockstep:plugin/strategist@0.1.2");
        let s = shape(&["wasi:http/types@0.2.0", "acme:db/query@1.0.0"], &[]);
        assert_eq!(
            s.unprovided_imports(),
            vec!["wasi:http/types@0.2.0", "acme:db/query@1.0.0"]
        );
    }
}
