//! The WebAssembly plugin runtime: finds plugin components on disk, checks
//! what they are before running them, and calls them in a sandbox.
//!
//! A plugin is a `NAME.wasm` component with a `NAME.toml` manifest beside it
//! ([`manifest`]) in one of the configured plugin directories. Each call gets
//! a fresh instance with no ambient authority (no files, environment,
//! arguments or network), the imports of the `lockstep:plugin` version it was
//! built against (`workspace`, `locks`, `log`, and since 0.2 `progress`; every
//! released minor is served, see [`SUPPORTED_APIS`]), and per-call
//! [`limits`]: a wall-clock deadline that kills, a memory cap and optional
//! fuel. Traps, timeouts and memory exhaustion come back as [`PluginError`]
//! variants; a plugin can neither crash nor hang the host, and every lease it
//! took is released when the call ends.

mod bindings;
mod cache;
mod call;
mod convert;
mod discover;
mod engine;
mod error;
mod failure;
mod host;
pub mod limits;
mod log;
pub mod manifest;
mod policy;
pub mod trust;
pub mod userdir;
mod world;

#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;

use crate::lifecycle::{Executor, PluginContext, PluginError, PluginProvider, Strategist};
use crate::model::{Action, PlanProposal, Step, StepOutcome};
use call::{CallReport, Callee, Request, Response, WarmSlot};
use engine::{file_name, Loaded, Runtime};

pub use cache::{CacheOutcome, CompileHook, ComponentCache, DEFAULT_CACHE_BYTES};
pub use discover::PLUGIN_PATH_ENV;
pub use error::{CompileError, EngineError, InspectError, WasmError};
pub use limits::{Grant, Limits, LimitsPolicy, RequestedLimits};
pub use log::LOG_TARGET;
pub use manifest::{ApiVersion, Manifest, ManifestError, PluginKind, Role};
pub use policy::{ChangeCaps, Policy, PolicyError, POLICY_FILE};
pub use trust::{project_plugin_dir, TrustError, TrustStore, TrustedProject};
pub use userdir::{CACHE_DIR_ENV, CONFIG_DIR_ENV};
pub use world::{HOST_API, SUPPORTED_APIS};

/// Operator settings of the plugin runtime.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginsConfig {
    /// Default and maximum limits of a plugin call.
    pub limits: LimitsPolicy,
    /// The plugin names allowed to run; empty allows every plugin.
    pub allow: Vec<String>,
    /// The policy file `limits` and `allow` came from, for messages
    /// (`None`: built-in defaults, or set by the embedding application).
    pub policy_source: Option<PathBuf>,
    /// Where compiled components are cached (keyed by content, engine version
    /// and settings); `None` compiles on every start. It must be the user's
    /// and closed to others, or it is not used (see [`ComponentCache`]).
    pub cache_dir: Option<PathBuf>,
    /// The user's lockstep config directory, where trusted projects are
    /// recorded (`trusted.toml`); `None` trusts no project's own plugins.
    pub config_dir: Option<PathBuf>,
    /// Bound of the cache directory in bytes (least recently used
    /// artifacts are evicted past it).
    pub cache_bytes: u64,
    /// Use the pooling instance allocator (falls back to on-demand
    /// allocation when the pool cannot be reserved).
    pub pooling: bool,
    /// Most plugin instances alive at once when pooling.
    pub max_instances: u32,
    /// Told whenever a component is compiled rather than loaded from the
    /// cache (the CLI prints a progress line).
    pub on_compile: Option<CompileHook>,
}

impl Default for PluginsConfig {
    fn default() -> Self {
        PluginsConfig {
            limits: LimitsPolicy::default(),
            allow: Vec::new(),
            policy_source: None,
            cache_dir: None,
            config_dir: None,
            cache_bytes: cache::DEFAULT_CACHE_BYTES,
            pooling: true,
            max_instances: 32,
            on_compile: None,
        }
    }
}

impl PluginsConfig {
    /// Defaults for the project at `project`: the same as
    /// [`PluginsConfig::for_user`], since nothing of a project's — a
    /// checkout anyone may have written — is ever used as a cache.
    pub fn for_project(_project: &Path) -> Self {
        Self::for_user()
    }

    /// Defaults from the user's environment: compiled components cached in
    /// `$LOCKSTEP_CACHE_DIR`, else `$XDG_CACHE_HOME/lockstep`, else
    /// `~/.cache/lockstep`; trusted projects recorded in
    /// `$LOCKSTEP_CONFIG_DIR`, else `$XDG_CONFIG_HOME/lockstep`, else
    /// `~/.config/lockstep`.
    pub fn for_user() -> Self {
        PluginsConfig {
            cache_dir: userdir::user_cache_dir(),
            config_dir: userdir::user_config_dir(),
            ..Default::default()
        }
    }
}

/// What `lockstep plugins precompile` did for one component.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Precompiled {
    /// The component file.
    pub path: PathBuf,
    /// Hit, compiled and stored, or compiled without a cache.
    pub outcome: Option<CacheOutcome>,
    /// Why it could not be compiled.
    pub error: Option<String>,
    /// How long it took.
    pub millis: f64,
}

/// A plugin as `lockstep plugins list` shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PluginInfo {
    /// The name actions use (the file stem when the manifest is broken).
    pub name: String,
    /// The plugin's version.
    pub version: String,
    /// What it may be used as.
    pub kind: Option<PluginKind>,
    /// The WIT API version the manifest declares.
    pub api: Option<String>,
    /// The component.
    pub path: PathBuf,
    /// The manifest.
    pub manifest: PathBuf,
    /// One line from the manifest.
    pub description: String,
    /// Deadline of one call after the operator's policy, in milliseconds.
    pub timeout_ms: Option<u64>,
    /// Memory cap of one call after the operator's policy, in bytes.
    pub memory_bytes: Option<u64>,
    /// Fuel of one call, when metered.
    pub fuel: Option<u64>,
    /// Every limit of one call: what the manifest asked for, what the
    /// policy grants, and whether a ceiling cut it down.
    pub limits: Vec<Grant>,
    /// An earlier plugin of the same name that hides this one.
    pub shadowed_by: Option<PathBuf>,
    /// Why the plugin cannot be used (broken or missing manifest).
    pub problem: Option<String>,
}

/// What `lockstep plugins inspect` reports about one component.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ComponentInfo {
    /// The component.
    pub path: PathBuf,
    /// The world it appears to target.
    pub world: String,
    /// The `lockstep:plugin` version it was built against, if any.
    pub api: Option<String>,
    /// Its import names.
    pub imports: Vec<String>,
    /// Its export names.
    pub exports: Vec<String>,
    /// Imports this host does not provide.
    pub unprovided_imports: Vec<String>,
    /// The manifest beside it, if any.
    pub manifest: Option<PluginInfo>,
    /// Everything that would stop the host from using it.
    pub problems: Vec<String>,
}

/// Finds and runs plugin components. Built once per container; cheap to
/// call from many sessions at once.
pub struct PluginEngine {
    runtime: Arc<Runtime>,
    dirs: Vec<PathBuf>,
    limits: LimitsPolicy,
    allow: Vec<String>,
    policy_source: Option<PathBuf>,
    /// A component that answers to its name ahead of the directories.
    pinned: Option<discover::Entry>,
    manifests: Arc<discover::ManifestCache>,
    /// The project whose own plugin directory is searched (first), for
    /// plugins the user has trusted.
    project: Option<ProjectPlugins>,
    trust: Arc<TrustStore>,
}

/// A project's own plugin directory: `dir` is `<root>/.lockstep/plugins`.
#[derive(Debug, Clone)]
struct ProjectPlugins {
    root: PathBuf,
    dir: PathBuf,
}

impl std::fmt::Debug for PluginEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginEngine")
            .field("dirs", &self.dirs)
            .field("pinned", &self.pinned.as_ref().map(|e| &e.wasm))
            .field("project", &self.project.as_ref().map(|p| &p.root))
            .field("runtime", &self.runtime)
            .finish()
    }
}

impl PluginEngine {
    /// An engine searching `dirs` with `options`. Every directory in `dirs`
    /// is the operator's choice and trusted as it is.
    pub fn with_options(dirs: Vec<PathBuf>, options: PluginsConfig) -> Result<Self, EngineError> {
        let runtime = Arc::new(Runtime::new(&options)?);
        Ok(PluginEngine {
            runtime,
            dirs,
            limits: options.limits,
            allow: options.allow,
            policy_source: options.policy_source,
            pinned: None,
            manifests: Arc::default(),
            project: None,
            trust: Arc::new(TrustStore::new(options.config_dir)),
        })
    }

    /// Also search `<project>/.lockstep/plugins`, ahead of the other
    /// directories. A plugin there is only loaded when the user has
    /// trusted the project (`lockstep trust`) and its files are unchanged
    /// since; otherwise looking it up fails with how to trust it.
    pub fn with_project_plugins(mut self, project: &Path) -> Self {
        let dir = project_plugin_dir(project);
        self.dirs.insert(0, dir.clone());
        self.project = Some(ProjectPlugins {
            root: project.to_path_buf(),
            dir,
        });
        self
    }

    /// The user's trust records this engine checks project plugins against.
    pub fn trust_store(&self) -> &TrustStore {
        &self.trust
    }

    /// For a plugin from the project's own directory, check the user
    /// trusted it as it is and return the component's SHA-256; `None` for
    /// plugins from the operator's directories.
    fn trusted(&self, entry: &discover::Entry, name: &str) -> Result<Option<String>, TrustError> {
        let Some(project) = &self.project else {
            return Ok(None);
        };
        if entry.wasm.parent() != Some(project.dir.as_path()) {
            return Ok(None);
        }
        engine::blocking_section(|| {
            self.trust
                .check(&project.root, name, &entry.wasm, &entry.manifest_path)
        })
        .map(Some)
    }

    /// Make the component at `wasm` (with its manifest beside it, as in a
    /// plugin directory) answer to its manifest's name ahead of the plugin
    /// directories, and return that manifest. Used to run a plugin straight
    /// from its build output (`lockstep plugin test dist/NAME.wasm`).
    pub fn pin(&mut self, wasm: &Path) -> Result<Manifest, PluginError> {
        let wasm = std::fs::canonicalize(wasm)
            .ok()
            .filter(|p| p.is_file())
            .ok_or_else(|| {
                PluginError::Load(format!("`{}` is not a component file", wasm.display()))
            })?;
        let manifest_path = wasm.with_extension("toml");
        if !manifest_path.is_file() {
            return Err(PluginError::Load(format!(
                "`{}` has no manifest beside it: expected {}",
                wasm.display(),
                file_name(&manifest_path)
            )));
        }
        let manifest = manifest::read(&manifest_path)
            .map_err(|e| PluginError::Load(format!("cannot be used: {e}")))?;
        self.pinned = Some(discover::Entry {
            wasm,
            manifest_path,
            manifest: Ok(manifest.clone()),
            shadowed_by: None,
        });
        Ok(manifest)
    }

    /// The plugin that answers to `name` (pinned, else the first one in the
    /// plugin directories), as `plugins list` shows it; an unknown name is
    /// refused with what was found and where.
    pub fn find(&self, name: &str) -> Result<PluginInfo, PluginError> {
        if let Some(pinned) = self.pinned.as_ref().filter(|p| p.name() == name) {
            return Ok(self.info(pinned));
        }
        let entries = discover::discover(&self.dirs, &self.manifests);
        discover::find(&entries, name)
            .map(|e| self.info(e))
            .ok_or_else(|| PluginError::Load(discover::unknown(name, &self.dirs, &entries)))
    }

    /// The plugin directories, in search order.
    pub fn dirs(&self) -> &[PathBuf] {
        &self.dirs
    }

    /// The operator's limits policy.
    pub fn limits(&self) -> &LimitsPolicy {
        &self.limits
    }

    /// Where the policy came from, for messages.
    fn policy_name(&self) -> String {
        match &self.policy_source {
            Some(path) => path.display().to_string(),
            None => "set by the embedding application".into(),
        }
    }

    /// `Err` unless the operator's allow-list (if any) names `name`.
    pub fn check_allowed(&self, name: &str) -> Result<(), PluginError> {
        if self.allow.is_empty() || self.allow.iter().any(|a| a == name) {
            return Ok(());
        }
        Err(PluginError::NotAllowed {
            plugin: name.to_string(),
            policy: self.policy_name(),
            allowed: self.allow.join(", "),
        })
    }

    /// Every plugin in the plugin directories, in search order, including
    /// broken and shadowed ones (see [`PluginInfo::problem`]).
    pub fn list(&self) -> Vec<PluginInfo> {
        discover::discover(&self.dirs, &self.manifests)
            .iter()
            .map(|e| self.info(e))
            .collect()
    }

    /// Compile every plugin found into the disk cache (`lockstep plugins
    /// precompile`), so that the first call of each loads in milliseconds.
    pub fn precompile(&self) -> Vec<Precompiled> {
        discover::discover(&self.dirs, &self.manifests)
            .iter()
            .filter(|e| e.shadowed_by.is_none())
            .map(|e| {
                let started = std::time::Instant::now();
                let result = self.runtime.compile_cached(&e.wasm, None);
                Precompiled {
                    path: e.wasm.clone(),
                    outcome: result.as_ref().ok().map(|(_, o)| *o),
                    error: result.err().map(|e| e.to_string()),
                    millis: started.elapsed().as_secs_f64() * 1000.0,
                }
            })
            .collect()
    }

    /// The compiled-component cache directory in use (engine-specific).
    pub fn cache_dir(&self) -> Option<&Path> {
        self.runtime.disk_cache().map(|c| c.dir())
    }

    fn info(&self, e: &discover::Entry) -> PluginInfo {
        let mut info = self.manifest_info(e);
        if info.problem.is_none() {
            if let Err(untrusted) = self.trusted(e, &info.name) {
                info.problem = Some(untrusted.to_string());
            }
        }
        info
    }

    fn manifest_info(&self, e: &discover::Entry) -> PluginInfo {
        match &e.manifest {
            Ok(m) => {
                let limits = self.limits.resolve(&m.limits);
                PluginInfo {
                    name: m.name.clone(),
                    version: m.version.clone(),
                    kind: Some(m.kind),
                    api: Some(m.api.to_string()),
                    path: e.wasm.clone(),
                    manifest: e.manifest_path.clone(),
                    description: m.description.clone(),
                    timeout_ms: Some(limits.timeout_ms()),
                    memory_bytes: Some(limits.memory_bytes),
                    fuel: limits.fuel,
                    limits: self.limits.grants(&m.limits),
                    shadowed_by: e.shadowed_by.clone(),
                    problem: match self.check_allowed(&m.name) {
                        Err(refused) => Some(refused.to_string()),
                        Ok(()) => {
                            (!world::supports(&m.api)).then(|| unsupported_api(m, &e.manifest_path))
                        }
                    },
                }
            }
            Err(err) => PluginInfo {
                name: e.name(),
                version: String::new(),
                kind: None,
                api: None,
                path: e.wasm.clone(),
                manifest: e.manifest_path.clone(),
                description: String::new(),
                timeout_ms: None,
                memory_bytes: None,
                fuel: None,
                limits: Vec::new(),
                shadowed_by: e.shadowed_by.clone(),
                problem: Some(err.to_string()),
            },
        }
    }

    /// Compile the component at `path` (or of the plugin named `path`) and
    /// report its world, API version, imports and exports, and whatever
    /// would stop the host from using it. Nothing is instantiated.
    pub fn inspect(&self, path: &Path) -> Result<ComponentInfo, InspectError> {
        let path = self.component_path(path)?;
        let component = self.runtime.compile(&path)?;
        let shape = world::Shape::of(self.runtime.engine(), &component);
        let manifest_path = path.with_extension("toml");
        let manifest = manifest_path.is_file().then(|| {
            let entry = discover::Entry {
                wasm: path.clone(),
                manifest: manifest::read(&manifest_path),
                manifest_path: manifest_path.clone(),
                shadowed_by: None,
            };
            (self.info(&entry), entry.manifest.ok())
        });
        let roles: Vec<Role> = match manifest
            .as_ref()
            .and_then(|(_, m)| m.as_ref())
            .map(|m| m.kind)
        {
            Some(PluginKind::Strategist) => vec![Role::Strategist],
            Some(PluginKind::Executor) => vec![Role::Executor],
            _ => vec![Role::Strategist, Role::Executor],
        };
        let mut problems: Vec<String> = roles
            .into_iter()
            .filter_map(|role| shape.role_problem(role, &path))
            .collect();
        if let Err(e) = self.runtime.check_link(&component) {
            problems.push(format!("cannot be linked against this host: {e}"));
        }
        problems.extend(manifest_problems(manifest.as_ref(), &manifest_path, &shape));
        Ok(ComponentInfo {
            world: shape.world_guess(),
            api: shape.api_version().map(|v| v.to_string()),
            unprovided_imports: shape.unprovided_imports(),
            imports: shape.imports,
            exports: shape.exports,
            manifest: manifest.map(|(info, _)| info),
            path,
            problems,
        })
    }

    /// The component file `path` names: the file, or else (when there is
    /// no such file) the component of the plugin called `path`.
    fn component_path(&self, path: &Path) -> Result<PathBuf, InspectError> {
        let entries = discover::discover(&self.dirs, &self.manifests);
        let path = match path.to_str().and_then(|name| {
            (!path.exists())
                .then(|| discover::find(&entries, name))
                .flatten()
        }) {
            Some(entry) => entry.wasm.clone(),
            None => path.to_path_buf(),
        };
        if !path.is_file() {
            return Err(InspectError::NotFound {
                path,
                dirs: self.dirs.clone(),
            });
        }
        Ok(path)
    }

    /// The plugin called `name`, loaded and checked for `role`.
    pub(crate) fn plugin(&self, name: &str, role: Role) -> Result<Arc<WasmPlugin>, PluginError> {
        let entries = discover::discover(&self.dirs, &self.manifests);
        let entry = match self.pinned.as_ref().filter(|p| p.name() == name) {
            Some(pinned) => pinned,
            None => discover::find(&entries, name)
                .ok_or_else(|| PluginError::Load(discover::unknown(name, &self.dirs, &entries)))?,
        };
        let content = self
            .trusted(entry, name)
            .map_err(|e| PluginError::Load(e.to_string()))?;
        let manifest = entry
            .manifest
            .clone()
            .map_err(|e| PluginError::Load(format!("plugin `{name}` cannot be used: {e}")))?;
        self.check_allowed(&manifest.name)?;
        if !manifest.kind.allows(role) {
            return Err(PluginError::Load(format!(
                "plugin `{name}` is a {kind} (kind = \"{kind}\" in {file}); it cannot be used as {a} {role}",
                kind = manifest.kind,
                file = entry.manifest_path.display(),
                a = if role == Role::Executor { "an" } else { "a" },
                role = role.as_str()
            )));
        }
        if !world::supports(&manifest.api) {
            return Err(PluginError::Load(unsupported_api(
                &manifest,
                &entry.manifest_path,
            )));
        }
        let loaded = self.runtime.load(&entry.wasm, content.as_deref())?;
        tracing::debug!(plugin = name, compiled = ?loaded.outcome, "plugin looked up");
        if !loaded.serves(role) {
            let problem = loaded
                .shape
                .role_problem(role, &entry.wasm)
                .unwrap_or_else(|| {
                    format!(
                    "`{}` exports lockstep:plugin/{} but not with the functions this host calls",
                    file_name(&entry.wasm),
                    world::interface_for(role)
                )
                });
            return Err(PluginError::Load(problem));
        }
        Ok(Arc::new(WasmPlugin {
            runtime: self.runtime.clone(),
            limits: self.limits.resolve(&manifest.limits),
            name: manifest.name,
            version: manifest.version,
            path: entry.wasm.clone(),
            loaded,
            warm: manifest.reuse_instance.then(WarmSlot::default),
        }))
    }
}

/// What stops a component from being used, as far as its manifest says:
/// no manifest at `manifest_path`, the manifest's own problem, or an API
/// version the component (of `shape`) does not use.
fn manifest_problems(
    manifest: Option<&(PluginInfo, Option<Manifest>)>,
    manifest_path: &Path,
    shape: &world::Shape,
) -> Vec<String> {
    let Some((info, parsed)) = manifest else {
        return vec![format!(
            "no manifest: expected {} beside it",
            file_name(manifest_path)
        )];
    };
    let mut problems: Vec<String> = info.problem.iter().cloned().collect();
    if let (Some(m), Some(found)) = (parsed, shape.api_version()) {
        if world::supports(&m.api) && !m.api.is_compatible_with(&found) {
            problems.push(format!(
                "the manifest declares api = \"{}\" but the component uses {}",
                m.api, found
            ));
        }
    }
    problems
}

fn unsupported_api(m: &Manifest, manifest_path: &Path) -> String {
    format!(
        "plugin `{}` declares api = \"{}\" in {}, {}",
        m.name,
        m.api,
        manifest_path.display(),
        world::unsupported(&m.api)
    )
}

impl PluginProvider for PluginEngine {
    fn strategist(&self, name: &str) -> Result<Arc<dyn Strategist>, PluginError> {
        Ok(self.plugin(name, Role::Strategist)?)
    }

    fn executor(&self, name: &str) -> Result<Arc<dyn Executor>, PluginError> {
        Ok(self.plugin(name, Role::Executor)?)
    }
}

/// A loaded plugin, ready to be called. The lifecycle looks a plugin up
/// once per phase; every call gets a fresh instance unless the manifest
/// asks for one instance per phase (`reuse_instance`).
pub(crate) struct WasmPlugin {
    runtime: Arc<Runtime>,
    name: String,
    version: String,
    path: PathBuf,
    loaded: Arc<Loaded>,
    limits: Limits,
    warm: Option<WarmSlot>,
}

impl WasmPlugin {
    /// Run `request` and report what the call cost.
    pub(crate) async fn call(
        &self,
        ctx: &PluginContext,
        request: Request,
    ) -> (Result<Response, PluginError>, CallReport) {
        let callee = Callee {
            name: &self.name,
            version: &self.version,
            path: &self.path,
            loaded: &self.loaded,
            limits: self.limits,
        };
        let (result, report) =
            call::run(&self.runtime, callee, ctx, request, self.warm.as_ref()).await;
        tracing::debug!(
            plugin = %self.name,
            plan = %ctx.plan_id,
            elapsed = ?report.elapsed,
            log_lines = report.log.emitted,
            log_dropped = report.log.dropped,
            leases_released = report.leases_released,
            ok = result.is_ok(),
            "plugin call finished"
        );
        (result, report)
    }
}

#[async_trait]
impl Strategist for WasmPlugin {
    async fn strategize(
        &self,
        ctx: &PluginContext,
        action: &Action,
    ) -> Result<PlanProposal, PluginError> {
        match self
            .call(ctx, Request::Strategize(action.clone()))
            .await
            .0?
        {
            Response::Proposal(p) => Ok(p),
            Response::Outcome(_) => Err(PluginError::Permanent(
                "strategize returned a step outcome".into(),
            )),
        }
    }
}

#[async_trait]
impl Executor for WasmPlugin {
    async fn execute(&self, ctx: &PluginContext, step: &Step) -> Result<StepOutcome, PluginError> {
        match self.call(ctx, Request::Execute(step.clone())).await.0? {
            Response::Outcome(o) => Ok(o),
            Response::Proposal(_) => Err(PluginError::Permanent(
                "execute returned a plan proposal".into(),
            )),
        }
    }
}
