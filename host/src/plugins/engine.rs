//! The wasmtime side, built once per [`PluginEngine`](super::PluginEngine):
//! the `Engine` (component model, epoch interruption, fuel when the policy
//! asks for it), the linker with every host import, one epoch ticker thread,
//! and a cache of pre-instantiated components keyed by path and file stamp.
//!
//! Instances are pooled when the operating system lets us reserve the pool;
//! otherwise they are allocated on demand (same limits, slower
//! instantiation).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use wasmtime::component::{Component, InstancePre, Linker};
use wasmtime::{Engine, InstanceAllocationStrategy, PoolingAllocationConfig, WasmBacktraceDetails};

use super::bindings::{self, ExecutionIndices, StrategyIndices};
use super::cache::{compile_uncached, CacheOutcome, CompileHook, ComponentCache};
use super::error::{EngineError, WasmError};
use super::host::PluginState;
use super::manifest::Role;
use super::world::{RoleExport, Shape};
use super::PluginsConfig;
use crate::lifecycle::PluginError;

/// How often the epoch advances; deadlines are counted in these ticks.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// A compiled, linked component, ready to instantiate once per call.
pub struct Loaded {
    stamp: FileStamp,
    /// The SHA-256 the caller required of the file, if any.
    content: Option<String>,
    /// Whether the compiled form came from the disk cache.
    pub outcome: CacheOutcome,
    /// The component's imports and exports.
    pub shape: Shape,
    /// Imports resolved against the host's linker.
    pub pre: InstancePre<PluginState>,
    /// The `strategy` export, if the component has a compatible one.
    pub strategy: Option<StrategyIndices>,
    /// The `execution` export, if the component has a compatible one.
    pub execution: Option<ExecutionIndices>,
}

impl Loaded {
    /// Whether the component can serve as `role`.
    pub fn serves(&self, role: Role) -> bool {
        match role {
            Role::Strategist => self.strategy.is_some(),
            Role::Executor => self.execution.is_some(),
        }
    }
}

/// Identifies one version of a file on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileStamp {
    modified: Option<SystemTime>,
    len: u64,
}

impl FileStamp {
    fn of(path: &Path) -> std::io::Result<FileStamp> {
        let meta = std::fs::metadata(path)?;
        Ok(FileStamp {
            modified: meta.modified().ok(),
            len: meta.len(),
        })
    }
}

/// Advances the engine's epoch every [`EPOCH_TICK`] until dropped.
struct EpochTicker {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl EpochTicker {
    fn start(engine: Engine) -> std::io::Result<EpochTicker> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("lockstep-epoch".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    engine.increment_epoch();
                }
            })?;
        Ok(EpochTicker {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The engine, linker, ticker and component cache.
pub struct Runtime {
    engine: Engine,
    linker: Linker<PluginState>,
    cache: Mutex<HashMap<PathBuf, Arc<Loaded>>>,
    disk: Option<ComponentCache>,
    on_compile: Option<CompileHook>,
    pooling: bool,
    fuel: bool,
    _ticker: EpochTicker,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("pooling", &self.pooling)
            .field("fuel", &self.fuel)
            .finish_non_exhaustive()
    }
}

fn engine_config(options: &PluginsConfig, pooling: bool) -> wasmtime::Config {
    let mut config = wasmtime::Config::new();
    config
        .wasm_component_model(true)
        .epoch_interruption(true)
        .consume_fuel(options.limits.fuel_enabled())
        .wasm_backtrace_details(WasmBacktraceDetails::Enable);
    if pooling {
        let instances = options.max_instances.max(1);
        let mut pool = PoolingAllocationConfig::new();
        pool.total_component_instances(instances)
            .total_core_instances(instances.saturating_mul(16))
            .total_memories(instances.saturating_mul(4))
            .total_tables(instances.saturating_mul(16))
            .total_stacks(instances)
            .max_tables_per_module(4)
            .table_elements(options.limits.max.table_elements.min(usize::MAX as u64) as usize)
            .max_memory_size(options.limits.max.memory_bytes.min(4 << 30) as usize);
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    }
    config
}

impl Runtime {
    /// Build the engine and linker for `options`.
    pub fn new(options: &PluginsConfig) -> Result<Runtime, EngineError> {
        let mut pooling = options.pooling;
        let engine = match Engine::new(&engine_config(options, pooling)) {
            Ok(engine) => engine,
            Err(e) if pooling => {
                tracing::warn!("pooling instance allocator unavailable ({e}); allocating plugin instances on demand");
                pooling = false;
                Engine::new(&engine_config(options, false)).map_err(WasmError::from)?
            }
            Err(e) => return Err(WasmError::from(e).into()),
        };
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(WasmError::from)?;
        bindings::add_to_linker(&mut linker).map_err(WasmError::from)?;
        let ticker = EpochTicker::start(engine.clone()).map_err(EngineError::Ticker)?;
        tracing::debug!(
            pooling,
            fuel = options.limits.fuel_enabled(),
            "plugin engine ready"
        );
        let disk = options.cache_dir.as_ref().map(|dir| {
            ComponentCache::new(dir, &engine, options.cache_bytes)
                .with_hook(options.on_compile.clone())
        });
        Ok(Runtime {
            engine,
            linker,
            cache: Mutex::default(),
            disk,
            on_compile: options.on_compile.clone(),
            pooling,
            fuel: options.limits.fuel_enabled(),
            _ticker: ticker,
        })
    }

    /// The wasmtime engine.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Whether calls are metered with fuel.
    pub fn fuel(&self) -> bool {
        self.fuel
    }

    /// Compile `path`, or load its compiled form from the disk cache.
    pub fn compile(&self, path: &Path) -> Result<Component, PluginError> {
        self.compile_cached(path, None)
            .map(|(component, _)| component)
    }

    /// Like [`Runtime::compile`], saying whether the cache was hit. With
    /// `expected`, the file must have that SHA-256.
    pub fn compile_cached(
        &self,
        path: &Path,
        expected: Option<&str>,
    ) -> Result<(Component, CacheOutcome), PluginError> {
        let name = file_name(path);
        let loaded = match &self.disk {
            Some(cache) => cache.load_or_compile(&self.engine, path, expected),
            None => {
                if let Some(hook) = &self.on_compile {
                    hook.compiling(path, false);
                }
                compile_uncached(&self.engine, path, expected).map(|c| (c, CacheOutcome::Uncached))
            }
        };
        loaded.map_err(|e| {
            PluginError::Load(format!(
                "`{name}` is not a loadable WebAssembly component: {}",
                e.with_causes()
            ))
        })
    }

    /// The disk cache, if one is configured.
    pub fn disk_cache(&self) -> Option<&ComponentCache> {
        self.disk.as_ref()
    }

    /// Whether `component`'s imports can all be satisfied by this host.
    pub fn check_link(&self, component: &Component) -> Result<(), String> {
        self.linker
            .instantiate_pre(component)
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    /// The pre-instantiated component at `path`, compiled and linked on
    /// first use and again whenever the file changes. Compilation blocks;
    /// on a multi-threaded runtime it runs with
    /// [`tokio::task::block_in_place`]. With `expected`, the file must have
    /// that SHA-256 (see [`ComponentCache::load_or_compile`]).
    pub fn load(&self, path: &Path, expected: Option<&str>) -> Result<Arc<Loaded>, PluginError> {
        let name = file_name(path);
        let stamp = FileStamp::of(path)
            .map_err(|e| PluginError::Load(format!("cannot read `{}`: {e}", path.display())))?;
        if let Some(loaded) = self.cached(path) {
            if loaded.stamp == stamp
                && (expected.is_none() || loaded.content.as_deref() == expected)
            {
                return Ok(loaded);
            }
        }
        let loaded = Arc::new(blocking_section(|| {
            self.link(path, &name, stamp, expected)
        })?);
        self.cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(path.to_path_buf(), loaded.clone());
        Ok(loaded)
    }

    fn cached(&self, path: &Path) -> Option<Arc<Loaded>> {
        self.cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(path)
            .cloned()
    }

    fn link(
        &self,
        path: &Path,
        name: &str,
        stamp: FileStamp,
        expected: Option<&str>,
    ) -> Result<Loaded, PluginError> {
        let started = std::time::Instant::now();
        let (component, outcome) = self.compile_cached(path, expected)?;
        let shape = Shape::of(&self.engine, &component);
        // Version first: a plugin built for another major also fails to link,
        // and the version is what the user must fix.
        let roles = [Role::Strategist, Role::Executor];
        if !roles
            .iter()
            .any(|r| matches!(shape.role_export(*r), RoleExport::Found(_)))
        {
            let incompatible = roles
                .iter()
                .find(|r| matches!(shape.role_export(**r), RoleExport::Incompatible(..)));
            if let Some(problem) = incompatible.and_then(|r| shape.role_problem(*r, path)) {
                return Err(PluginError::Load(problem));
            }
        }
        let pre = self.linker.instantiate_pre(&component).map_err(|e| {
            let missing = shape.unprovided_imports();
            if missing.is_empty() {
                PluginError::Load(format!("`{name}` cannot be linked against this host: {e}"))
            } else {
                PluginError::Load(format!(
                    "`{name}` imports what this host does not provide: {} (the host provides lockstep:plugin {}, \
                     and wasi@0.2.x without files, environment or network)",
                    missing.join(", "),
                    super::world::supported_lines(" and ")
                ))
            }
        })?;
        let strategy = StrategyIndices::new(&shape, &pre);
        let execution = ExecutionIndices::new(&shape, &pre);
        tracing::debug!(plugin = name, elapsed = ?started.elapsed(), "compiled and linked plugin component");
        Ok(Loaded {
            stamp,
            content: expected.map(str::to_string),
            outcome,
            shape,
            pre,
            strategy,
            execution,
        })
    }
}

/// The file name of `path`, for messages.
pub fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}

/// Run blocking work (compilation, hashing) without stalling a
/// multi-threaded runtime's other tasks.
pub(super) fn blocking_section<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(handle) if handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}
