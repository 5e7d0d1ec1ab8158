//! The per-call store state and the host side of the plugin imports of the
//! latest `lockstep:plugin` version: `workspace` (the read-only
//! [`ProjectView`]), `locks` (leases through [`ScopedLocks`]), `log` and
//! `progress`, plus a WASI context without ambient authority. Older versions'
//! imports delegate to these (`bindings/`).
//!
//! Denials are values: a path outside the project, a lock held by someone
//! else, a lease already released all come back as WIT error variants. Only
//! a broken host invariant (a lease handle missing from the resource table)
//! traps.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use wasmtime::component::{Resource, ResourceTable};
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use super::bindings::latest::lockstep::plugin::{
    locks, log as wit_log, progress as wit_progress, types as wit, workspace,
};
use super::convert;
use super::limits::{Limits, MemoryLimiter};
use super::log::{LogLevel, PluginLog, StdioLog};
use super::progress::ProgressSink;
use crate::lifecycle::progress::ProgressFn;
use crate::locks::{Lease, LockConflict, ScopedLocks};
use crate::workspace::ProjectView;

/// The host's half of a `lease` resource handed to a plugin.
#[derive(Debug)]
pub struct LeaseSlot {
    lease: Lease,
}

/// Every lease taken during one call, so that the call can release what the
/// plugin did not. Once closed, a lease that arrives late (its acquisition
/// finished after the call was abandoned) is released on arrival.
#[derive(Debug, Clone, Default)]
pub struct LeaseLedger {
    inner: Arc<Mutex<LedgerState>>,
}

#[derive(Debug, Default)]
struct LedgerState {
    leases: Vec<Lease>,
    closed: bool,
}

impl LeaseLedger {
    fn state(&self) -> MutexGuard<'_, LedgerState> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Record `lease`; `false` if the call is over and the caller must
    /// release it itself.
    fn track(&self, lease: &Lease) -> bool {
        let mut state = self.state();
        if state.closed {
            return false;
        }
        state.leases.retain(|l| !l.is_released());
        state.leases.push(lease.clone());
        true
    }

    /// Leases still held.
    pub fn held(&self) -> usize {
        self.state()
            .leases
            .iter()
            .filter(|l| !l.is_released())
            .count()
    }

    /// Close the ledger and release every lease still held. Returns how
    /// many were released.
    pub async fn release_all(&self) -> usize {
        let leases = {
            let mut state = self.state();
            state.closed = true;
            std::mem::take(&mut state.leases)
        };
        let mut released = 0;
        for lease in leases.into_iter().filter(|l| !l.is_released()) {
            match release_detached(lease.clone()).await {
                Ok(_) => released += 1,
                Err(e) => tracing::warn!(
                    resource = lease.resource(),
                    "could not release a plugin's lease: {e}"
                ),
            }
        }
        released
    }
}

/// Release `lease` in a task of its own, so that it completes even if the
/// call that asked for it is abandoned.
async fn release_detached(lease: Lease) -> Result<bool, crate::locks::LockError> {
    tokio::spawn(async move { lease.release().await }).await?
}

/// Everything one plugin call's [`wasmtime::Store`] holds.
pub struct PluginState {
    wasi: WasiCtx,
    table: ResourceTable,
    /// Enforces the memory limit and remembers refusals.
    pub limiter: MemoryLimiter,
    project: Arc<ProjectView>,
    locks: ScopedLocks,
    leases: LeaseLedger,
    max_leases: usize,
    /// Lease handles in `table` (released or not) and the most allowed.
    lease_handles: usize,
    max_lease_handles: usize,
    conflicts: HashMap<(String, String), LockConflict>,
    log: PluginLog,
    progress: ProgressSink,
}

impl PluginState {
    /// State for one call: no preopens, no environment, no arguments, no
    /// network; stdout and stderr go to the given [`StdioLog`]s, progress
    /// reports to `log` and `progress`. The resource table holds at most
    /// [`Limits::resource_handles`] + [`Limits::lease_handles`] entries and
    /// one random-bytes call returns at most [`Limits::random_bytes`].
    pub fn new(
        project: Arc<ProjectView>,
        locks: ScopedLocks,
        leases: LeaseLedger,
        log: PluginLog,
        [stdout, stderr]: [StdioLog; 2],
        limits: &Limits,
        progress: Option<ProgressFn>,
    ) -> Self {
        let wasi = WasiCtxBuilder::new()
            .stdout(stdout)
            .stderr(stderr)
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .max_random_size(limits.random_bytes)
            .build();
        // WASI's handles and the plugin's lease handles share the table;
        // lease handles are counted (and refused as a value) on their own.
        let mut table = ResourceTable::new();
        table.set_max_capacity(limits.resource_handles.saturating_add(limits.lease_handles));
        PluginState {
            wasi,
            table,
            limiter: MemoryLimiter::new(limits),
            project,
            locks,
            leases,
            max_leases: limits.leases,
            lease_handles: 0,
            max_lease_handles: limits.lease_handles,
            conflicts: HashMap::new(),
            progress: ProgressSink::new(log.clone(), progress),
            log,
        }
    }

    /// Point a kept instance's state at the next call of the same phase:
    /// its project view (with the overlay of earlier steps), leases, log
    /// and progress sink. stdout and stderr keep going to the first call's
    /// log, which carries the same plugin and plan tags.
    pub fn rebind(
        &mut self,
        project: Arc<ProjectView>,
        locks: ScopedLocks,
        leases: LeaseLedger,
        log: PluginLog,
        progress: Option<ProgressFn>,
    ) {
        self.project = project;
        self.locks = locks;
        self.leases = leases;
        self.conflicts.clear();
        self.progress = ProgressSink::new(log.clone(), progress);
        self.log = log;
    }

    /// Conflicts the host reported to the plugin during this call, keyed by
    /// resource and owner.
    pub fn conflicts(&self) -> &HashMap<(String, String), LockConflict> {
        &self.conflicts
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

/// Run a blocking file-system read off the async worker.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, wit::FsError> + Send + 'static,
) -> Result<T, wit::FsError> {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| Err(wit::FsError::Io(format!("workspace read failed: {e}"))))
}

impl wit::Host for PluginState {}

impl workspace::Host for PluginState {
    async fn list(
        &mut self,
        pattern: String,
    ) -> wasmtime::Result<Result<Vec<String>, wit::FsError>> {
        let view = self.project.clone();
        Ok(blocking(move || view.list(&pattern).map_err(convert::fs_error_to_wit)).await)
    }

    async fn read(&mut self, path: String) -> wasmtime::Result<Result<Vec<u8>, wit::FsError>> {
        let view = self.project.clone();
        Ok(blocking(move || view.read(&path).map_err(convert::fs_error_to_wit)).await)
    }

    async fn metadata(
        &mut self,
        path: String,
    ) -> wasmtime::Result<Result<wit::FileInfo, wit::FsError>> {
        let view = self.project.clone();
        Ok(blocking(move || {
            view.metadata(&path)
                .map(convert::entry_to_wit)
                .map_err(convert::fs_error_to_wit)
        })
        .await)
    }
}

impl locks::Host for PluginState {
    async fn acquire(
        &mut self,
        name: String,
        ttl_ms: u64,
    ) -> wasmtime::Result<Result<Resource<LeaseSlot>, wit::LockError>> {
        if self.lease_handles >= self.max_lease_handles {
            return Ok(Err(wit::LockError::Invalid(format!(
                "too many lease handles open at once (at most {}); drop leases you have released",
                self.max_lease_handles
            ))));
        }
        if self.leases.held() >= self.max_leases {
            return Ok(Err(wit::LockError::Invalid(format!(
                "too many leases held at once (at most {}); release one first",
                self.max_leases
            ))));
        }
        // Acquire in a task of its own: if the call is abandoned mid-way the
        // lease still reaches the ledger (or is released right away).
        let scoped = self.locks.clone();
        let ledger = self.leases.clone();
        let ttl = Duration::from_millis(ttl_ms);
        let task = tokio::spawn(async move {
            let lease = scoped.acquire(&name, ttl).await?;
            if !ledger.track(&lease) {
                let _ = lease.release().await;
            }
            Ok::<_, crate::locks::LockError>(lease)
        });
        let result = match task.await {
            Ok(r) => r,
            Err(e) => {
                return Ok(Err(wit::LockError::Unavailable(format!(
                    "lock request failed: {e}"
                ))))
            }
        };
        match result {
            Ok(lease) => {
                let handle = self.table.push(LeaseSlot { lease })?;
                self.lease_handles += 1;
                Ok(Ok(handle))
            }
            Err(e) => {
                if let Some(c) = e.conflict() {
                    self.conflicts
                        .insert((c.resource.clone(), c.owner.clone()), c.clone());
                }
                Ok(Err(convert::lock_error_to_wit(&e)))
            }
        }
    }
}

impl locks::HostLease for PluginState {
    async fn name(&mut self, lease: Resource<LeaseSlot>) -> wasmtime::Result<String> {
        Ok(self.table.get(&lease)?.lease.resource().to_string())
    }

    async fn token(&mut self, lease: Resource<LeaseSlot>) -> wasmtime::Result<u64> {
        Ok(self.table.get(&lease)?.lease.token().max(0) as u64)
    }

    async fn renew(
        &mut self,
        lease: Resource<LeaseSlot>,
        ttl_ms: u64,
    ) -> wasmtime::Result<Result<(), wit::LockError>> {
        let lease = self.table.get(&lease)?.lease.clone();
        if lease.is_released() {
            return Ok(Err(released(&lease)));
        }
        Ok(lease
            .renew(Duration::from_millis(ttl_ms))
            .await
            .map_err(|e| convert::lock_error_to_wit(&e)))
    }

    async fn release(
        &mut self,
        lease: Resource<LeaseSlot>,
    ) -> wasmtime::Result<Result<(), wit::LockError>> {
        let lease = self.table.get(&lease)?.lease.clone();
        Ok(match release_detached(lease.clone()).await {
            Ok(true) => Ok(()),
            Ok(false) => Err(released(&lease)),
            Err(e) => Err(convert::lock_error_to_wit(&e)),
        })
    }

    async fn drop(&mut self, lease: Resource<LeaseSlot>) -> wasmtime::Result<()> {
        let slot = self.table.delete(lease)?;
        self.lease_handles = self.lease_handles.saturating_sub(1);
        if !slot.lease.is_released() {
            if let Err(e) = release_detached(slot.lease.clone()).await {
                tracing::warn!(
                    resource = slot.lease.resource(),
                    "could not release a dropped plugin lease: {e}"
                );
            }
        }
        Ok(())
    }
}

fn released(lease: &Lease) -> wit::LockError {
    wit::LockError::Invalid(format!(
        "the lease on `{}` was already released",
        lease.resource()
    ))
}

impl wit_log::Host for PluginState {
    async fn log(&mut self, level: wit_log::Level, message: String) -> wasmtime::Result<()> {
        let level = match level {
            wit_log::Level::Trace => LogLevel::Trace,
            wit_log::Level::Debug => LogLevel::Debug,
            wit_log::Level::Info => LogLevel::Info,
            wit_log::Level::Warn => LogLevel::Warn,
            wit_log::Level::Error => LogLevel::Error,
        };
        self.log.line(level, "log", &message);
        Ok(())
    }
}

impl wit_progress::Host for PluginState {
    async fn report(&mut self, done: u64, total: u64, message: String) -> wasmtime::Result<()> {
        self.progress.report(done, total, &message);
        Ok(())
    }
}
