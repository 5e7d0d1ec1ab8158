//! The store data of one plugin call and the host side of the plugin
//! imports, one capability at a time (after wasmtime-wasi's `WasiCtxView`
//! and spin's factors):
//!
//! | capability | state | imports |
//! |---|---|---|
//! | [`workspace`] | [`WorkspaceCtx`]: the read-only project view | `workspace` |
//! | [`locks`] | [`LocksCtx`]: scoped leases, their ledger and caps, the conflicts reported | `locks` and its `lease` resource |
//! | [`log`] | [`LogCtx`]: the call's plugin log | `log` |
//! | [`progress`] | [`ProgressSink`]: the log and the session's progress callback | `progress` |
//! | WASI (here) | the WASI context and the resource table, without ambient authority | `wasi:*` |
//!
//! [`PluginState`] only composes them. Each capability is linked through an
//! accessor that hands its `Host` implementation its own state and nothing
//! else (`locks` also gets the resource table its `lease` handles live in);
//! older WIT versions' imports are implemented on the same capability types
//! by delegating to the latest (`bindings/v0_1_0.rs`).
//!
//! Denials are values: a path outside the project, a lock held by someone
//! else, a lease already released all come back as WIT error variants. Only
//! a broken host invariant (a lease handle missing from the resource table)
//! traps.

pub mod locks;
pub mod log;
pub mod progress;
pub mod workspace;

use std::sync::Arc;

use wasmtime::component::{HasData, ResourceTable};
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use super::bindings::latest::lockstep::plugin::types as wit;
use super::limits::{Limits, MemoryLimiter};
use super::log::{PluginLog, StdioLog};
use crate::lifecycle::progress::ProgressFn;
use crate::locks::ScopedLocks;
use crate::workspace::ProjectView;
pub use locks::{HasLocks, LeaseLedger, LeaseSlot, LocksCtx, LocksView};
pub use log::LogCtx;
pub use progress::ProgressSink;
pub use workspace::WorkspaceCtx;

/// What one call hands the plugin's imports: this call's project view, lock
/// access, lease ledger, log and progress callback.
pub struct CallScope {
    /// The read-only project view (with the overlay of earlier steps).
    pub project: Arc<ProjectView>,
    /// Leases on project sub-resources, held by the running session.
    pub locks: ScopedLocks,
    /// Where every lease taken during the call is recorded.
    pub leases: LeaseLedger,
    /// The call's plugin log.
    pub log: PluginLog,
    /// The session's progress callback, if it listens.
    pub progress: Option<ProgressFn>,
}

/// Everything one plugin call's [`wasmtime::Store`] holds: the WASI
/// context, the resource table, the memory limiter and one state per
/// capability.
pub struct PluginState {
    wasi: WasiCtx,
    table: ResourceTable,
    /// Enforces the memory limit and remembers refusals.
    pub limiter: MemoryLimiter,
    workspace: WorkspaceCtx,
    locks: LocksCtx,
    log: LogCtx,
    progress: ProgressSink,
}

impl PluginState {
    /// State for one call of `scope`: stdout and stderr go to the given
    /// [`StdioLog`]s, and each capability gets its share of `limits` (see
    /// [`wasi_ctx`], [`resource_table`] and [`LocksCtx::new`]).
    pub fn new(scope: CallScope, [stdout, stderr]: [StdioLog; 2], limits: &Limits) -> Self {
        PluginState {
            wasi: wasi_ctx(stdout, stderr, limits),
            table: resource_table(limits),
            limiter: MemoryLimiter::new(limits),
            workspace: WorkspaceCtx::new(scope.project),
            locks: LocksCtx::new(scope.locks, scope.leases, limits),
            progress: ProgressSink::new(scope.log.clone(), scope.progress),
            log: LogCtx::new(scope.log),
        }
    }

    /// Point a kept instance's state at the next call of the same phase:
    /// its project view (with the overlay of earlier steps), leases, log
    /// and progress sink. stdout and stderr keep going to the first call's
    /// log, which carries the same plugin and plan tags.
    pub fn rebind(&mut self, scope: CallScope) {
        self.workspace = WorkspaceCtx::new(scope.project);
        self.locks.rebind(scope.locks, scope.leases);
        self.progress = ProgressSink::new(scope.log.clone(), scope.progress);
        self.log = LogCtx::new(scope.log);
    }

    /// The `locks` capability's state, read after a call (the conflicts it
    /// reported).
    pub fn lock_state(&self) -> &LocksCtx {
        &self.locks
    }

    /// The `workspace` capability (the linker's accessor).
    pub fn workspace(&mut self) -> &mut WorkspaceCtx {
        &mut self.workspace
    }

    /// The `locks` capability and the resource table (the linker's
    /// accessor).
    pub fn locks(&mut self) -> LocksView<'_> {
        LocksView {
            ctx: &mut self.locks,
            table: &mut self.table,
        }
    }

    /// The `log` capability (the linker's accessor).
    pub fn log(&mut self) -> &mut LogCtx {
        &mut self.log
    }

    /// The `progress` capability (the linker's accessor).
    pub fn progress(&mut self) -> &mut ProgressSink {
        &mut self.progress
    }
}

impl WasiView for PluginState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// A WASI context without ambient authority: no preopens, no environment,
/// no arguments, no network; stdout and stderr go to the given streams, and
/// one random-bytes call returns at most [`Limits::random_bytes`].
pub fn wasi_ctx(stdout: StdioLog, stderr: StdioLog, limits: &Limits) -> WasiCtx {
    WasiCtxBuilder::new()
        .stdout(stdout)
        .stderr(stderr)
        .allow_tcp(false)
        .allow_udp(false)
        .allow_ip_name_lookup(false)
        .max_random_size(limits.random_bytes)
        .build()
}

/// The resource table WASI's handles and the plugin's lease handles share:
/// at most [`Limits::resource_handles`] + [`Limits::lease_handles`]
/// entries. Lease handles are also counted (and refused as a value) on
/// their own, by [`LocksCtx`].
pub fn resource_table(limits: &Limits) -> ResourceTable {
    let mut table = ResourceTable::new();
    table.set_max_capacity(limits.resource_handles.saturating_add(limits.lease_handles));
    table
}

/// The `types` interface: types only, nothing to implement. It is linked
/// (as its own [`HasData`]) so that a component importing it finds it.
pub struct Types;

impl HasData for Types {
    type Data<'a> = Types;
}

impl wit::Host for Types {}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::super::bindings::latest::lockstep::plugin::{
        locks::Host as _, log as wit_log, progress as wit_progress, workspace::Host as _,
    };
    use super::*;
    use crate::db::Db;
    use crate::lifecycle::progress::Progress;
    use crate::locks::{LockService, Owner};

    /// A project directory holding `name.txt`, and a view of it.
    fn project(dir: &std::path::Path, name: &str) -> Arc<ProjectView> {
        let root = dir.join(name);
        std::fs::create_dir_all(&root).unwrap();
        std::fs::write(root.join(format!("{name}.txt")), name).unwrap();
        Arc::new(ProjectView::new(&root).unwrap())
    }

    /// One call's scope on project `name`, its ledger and log, and the
    /// progress events it receives.
    fn scope(
        dir: &std::path::Path,
        service: &LockService,
        name: &str,
    ) -> (CallScope, Arc<Mutex<Vec<Progress>>>) {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let events = seen.clone();
        let scope = CallScope {
            project: project(dir, name),
            locks: ScopedLocks::new(service.clone(), Owner::new_session(), "projid", name),
            leases: LeaseLedger::default(),
            log: PluginLog::new("p", "1.0.0", name, &Limits::DEFAULT),
            progress: Some(Arc::new(move |p: &Progress| {
                events.lock().unwrap().push(p.clone())
            })),
        };
        (scope, seen)
    }

    async fn service(dir: &std::path::Path) -> LockService {
        let db = Db::connect(&format!("sqlite://{}", dir.join("t.db").display()))
            .await
            .unwrap();
        LockService::new(db)
    }

    fn stdio(log: &PluginLog) -> [StdioLog; 2] {
        [StdioLog::stdout(log), StdioLog::stderr(log)]
    }

    #[test]
    fn wasi_and_lease_handles_share_one_bounded_table() {
        let limits = Limits {
            resource_handles: 2,
            lease_handles: 1,
            ..Limits::DEFAULT
        };
        let mut table = resource_table(&limits);
        for _ in 0..3 {
            table.push(()).unwrap();
        }
        assert!(matches!(
            table.push(()),
            Err(wasmtime::component::ResourceTableError::Full)
        ));
    }

    #[tokio::test]
    async fn each_capability_serves_its_own_call_and_a_rebind_moves_them_all() {
        let dir = tempfile::tempdir().unwrap();
        let service = service(dir.path()).await;
        let (first, first_progress) = scope(dir.path(), &service, "first");
        let (first_log, first_ledger) = (first.log.clone(), first.leases.clone());
        let mut state = PluginState::new(first, stdio(&first_log), &Limits::DEFAULT);

        let read = state.workspace().read("first.txt".into()).await.unwrap();
        assert_eq!(read.unwrap(), b"first");
        state
            .locks()
            .acquire("db".into(), 30_000)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(first_ledger.held(), 1);
        wit_log::Host::log(state.log(), wit_log::Level::Info, "hi".into())
            .await
            .unwrap();
        wit_progress::Host::report(state.progress(), 1, 2, "half".into())
            .await
            .unwrap();
        assert_eq!(first_log.stats().emitted, 2);
        assert_eq!(first_progress.lock().unwrap().len(), 1);

        let (second, second_progress) = scope(dir.path(), &service, "second");
        let (second_log, second_ledger) = (second.log.clone(), second.leases.clone());
        state.rebind(second);
        let read = state.workspace().read("second.txt".into()).await.unwrap();
        assert_eq!(read.unwrap(), b"second");
        let gone = state.workspace().read("first.txt".into()).await.unwrap();
        assert!(matches!(gone, Err(wit::FsError::NotFound(_))), "{gone:?}");
        state
            .locks()
            .acquire("cache".into(), 30_000)
            .await
            .unwrap()
            .unwrap();
        assert_eq!((first_ledger.held(), second_ledger.held()), (1, 1));
        wit_log::Host::log(state.log(), wit_log::Level::Info, "hi".into())
            .await
            .unwrap();
        wit_progress::Host::report(state.progress(), 2, 2, "done".into())
            .await
            .unwrap();
        assert_eq!(
            (first_log.stats().emitted, second_log.stats().emitted),
            (2, 2)
        );
        assert_eq!(first_progress.lock().unwrap().len(), 1);
        assert_eq!(second_progress.lock().unwrap().len(), 1);
        first_ledger.release_all().await;
        second_ledger.release_all().await;
        assert!(service.list().await.unwrap().is_empty());
    }
}
