//! The `locks` capability: leases on project sub-resources through
//! [`ScopedLocks`], handed to the plugin as `lease` resources.
//!
//! [`LocksCtx`] holds what the capability owns for one call: the scoped lock
//! access, the [`LeaseLedger`] of every lease taken, the caps on leases held
//! and handles open, and the conflicts reported to the plugin. The `lease`
//! handles live in the store's resource table, which WASI shares, so the
//! imports are implemented on a [`LocksView`] of both (wasmtime-wasi's
//! `WasiCtxView` pattern), linked through [`HasLocks`].
//!
//! Denials are values: a lock held by someone else, a lease already
//! released, one lease too many all come back as `lock-error`. Only a lease
//! handle missing from the resource table (a broken host invariant) traps.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use wasmtime::component::{HasData, Resource, ResourceTable};

use super::super::bindings::latest::lockstep::plugin::{locks, types as wit};
use super::super::convert;
use super::super::limits::Limits;
use crate::locks::{Lease, LockConflict, LockError, ScopedLocks};

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
async fn release_detached(lease: Lease) -> Result<bool, LockError> {
    tokio::spawn(async move { lease.release().await }).await?
}

/// The `locks` capability's state for one call.
#[derive(Debug)]
pub struct LocksCtx {
    locks: ScopedLocks,
    ledger: LeaseLedger,
    /// Most leases held at once.
    max_leases: usize,
    /// Lease handles in the resource table (released or not) and the most
    /// allowed.
    handles: usize,
    max_handles: usize,
    conflicts: HashMap<(String, String), LockConflict>,
}

impl LocksCtx {
    /// Leases through `locks`, recorded in `ledger`, within the lease caps
    /// of `limits` ([`Limits::leases`], [`Limits::lease_handles`]).
    pub fn new(locks: ScopedLocks, ledger: LeaseLedger, limits: &Limits) -> Self {
        LocksCtx {
            locks,
            ledger,
            max_leases: limits.leases,
            handles: 0,
            max_handles: limits.lease_handles,
            conflicts: HashMap::new(),
        }
    }

    /// Serve the next call of a kept instance: its lock access and ledger,
    /// no conflicts reported yet. Handles the plugin still has open stay
    /// counted.
    pub fn rebind(&mut self, locks: ScopedLocks, ledger: LeaseLedger) {
        self.locks = locks;
        self.ledger = ledger;
        self.conflicts.clear();
    }

    /// Conflicts the host reported to the plugin during this call, keyed by
    /// resource and owner.
    pub fn conflicts(&self) -> &HashMap<(String, String), LockConflict> {
        &self.conflicts
    }

    /// Why another lease may not be taken now, if it may not.
    fn refusal(&self) -> Option<wit::LockError> {
        if self.handles >= self.max_handles {
            return Some(wit::LockError::Invalid(format!(
                "too many lease handles open at once (at most {}); drop leases you have released",
                self.max_handles
            )));
        }
        (self.ledger.held() >= self.max_leases).then(|| {
            wit::LockError::Invalid(format!(
                "too many leases held at once (at most {}); release one first",
                self.max_leases
            ))
        })
    }

    /// Take a lease on `name` in a task of its own: if the call is
    /// abandoned mid-way the lease still reaches the ledger (or is released
    /// right away).
    async fn take(&mut self, name: String, ttl: Duration) -> Result<Lease, wit::LockError> {
        let scoped = self.locks.clone();
        let ledger = self.ledger.clone();
        let task = tokio::spawn(async move {
            let lease = scoped.acquire(&name, ttl).await?;
            if !ledger.track(&lease) {
                let _ = lease.release().await;
            }
            Ok::<_, LockError>(lease)
        });
        match task.await {
            Ok(result) => result.map_err(|e| self.refused(&e)),
            Err(e) => Err(wit::LockError::Unavailable(format!(
                "lock request failed: {e}"
            ))),
        }
    }

    /// `e` as the plugin sees it, a conflict remembered for the call's
    /// error report.
    fn refused(&mut self, e: &LockError) -> wit::LockError {
        if let Some(c) = e.conflict() {
            self.conflicts
                .insert((c.resource.clone(), c.owner.clone()), c.clone());
        }
        convert::lock_error_to_wit(e)
    }
}

/// The `locks` capability seen by its imports: its own state and the
/// resource table that holds the `lease` handles.
pub struct LocksView<'a> {
    /// The capability's state.
    pub ctx: &'a mut LocksCtx,
    /// The store's resource table.
    pub table: &'a mut ResourceTable,
}

/// Links the `locks` imports to a [`LocksView`] ([`HasData`] for
/// `locks::add_to_linker`).
pub struct HasLocks;

impl HasData for HasLocks {
    type Data<'a> = LocksView<'a>;
}

impl locks::Host for LocksView<'_> {
    async fn acquire(
        &mut self,
        name: String,
        ttl_ms: u64,
    ) -> wasmtime::Result<Result<Resource<LeaseSlot>, wit::LockError>> {
        if let Some(refused) = self.ctx.refusal() {
            return Ok(Err(refused));
        }
        match self.ctx.take(name, Duration::from_millis(ttl_ms)).await {
            Ok(lease) => {
                let handle = self.table.push(LeaseSlot { lease })?;
                self.ctx.handles += 1;
                Ok(Ok(handle))
            }
            Err(refused) => Ok(Err(refused)),
        }
    }
}

impl locks::HostLease for LocksView<'_> {
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
        self.ctx.handles = self.ctx.handles.saturating_sub(1);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::Db;
    use crate::locks::{LockService, Owner};
    use locks::{Host as _, HostLease as _};

    /// A lock service on a fresh SQLite database.
    async fn service() -> (tempfile::TempDir, LockService) {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::connect(&format!("sqlite://{}", dir.path().join("t.db").display()))
            .await
            .unwrap();
        (dir, LockService::new(db))
    }

    fn scoped(service: &LockService, owner: Owner) -> ScopedLocks {
        ScopedLocks::new(service.clone(), owner, "projid", "test")
    }

    /// The capability of one call by a new session, and its resource table.
    fn capability(service: &LockService, limits: &Limits) -> (LocksCtx, ResourceTable) {
        let ctx = LocksCtx::new(
            scoped(service, Owner::new_session()),
            LeaseLedger::default(),
            limits,
        );
        (ctx, ResourceTable::new())
    }

    fn view<'a>(ctx: &'a mut LocksCtx, table: &'a mut ResourceTable) -> LocksView<'a> {
        LocksView { ctx, table }
    }

    /// The plugin's borrow of a lease it owns.
    fn borrow(lease: &Resource<LeaseSlot>) -> Resource<LeaseSlot> {
        Resource::new_borrow(lease.rep())
    }

    async fn acquire(
        view: &mut LocksView<'_>,
        name: &str,
    ) -> Result<Resource<LeaseSlot>, wit::LockError> {
        view.acquire(name.into(), 30_000).await.unwrap()
    }

    #[tokio::test]
    async fn a_lease_is_a_handle_that_names_its_resource_and_releases_once() {
        let (_dir, service) = service().await;
        let (mut ctx, mut table) = capability(&service, &Limits::DEFAULT);
        let mut v = view(&mut ctx, &mut table);
        let lease = acquire(&mut v, "db").await.unwrap();
        assert_eq!(
            v.name(borrow(&lease)).await.unwrap(),
            "project:projid/res:db"
        );
        assert!(v.token(borrow(&lease)).await.unwrap() > 0);
        assert!(v.renew(borrow(&lease), 60_000).await.unwrap().is_ok());
        assert_eq!(service.list().await.unwrap().len(), 1);

        assert!(v.release(borrow(&lease)).await.unwrap().is_ok());
        assert!(service.list().await.unwrap().is_empty());
        let again = "the lease on `project:projid/res:db` was already released";
        let released_again = v.release(borrow(&lease)).await.unwrap();
        assert!(
            matches!(&released_again, Err(wit::LockError::Invalid(m)) if m == again),
            "{released_again:?}"
        );
        let renewed_after = v.renew(borrow(&lease), 1_000).await.unwrap();
        assert!(
            matches!(&renewed_after, Err(wit::LockError::Invalid(m)) if m == again),
            "{renewed_after:?}"
        );

        // The handle stays until the plugin drops it.
        assert_eq!(ctx.handles, 1);
        let mut v = view(&mut ctx, &mut table);
        v.drop(lease).await.unwrap();
        assert_eq!(ctx.handles, 0);
        assert_eq!(ctx.ledger.held(), 0);
    }

    #[tokio::test]
    async fn dropping_a_held_lease_releases_it() {
        let (_dir, service) = service().await;
        let (mut ctx, mut table) = capability(&service, &Limits::DEFAULT);
        let mut v = view(&mut ctx, &mut table);
        let lease = acquire(&mut v, "db").await.unwrap();
        v.drop(lease).await.unwrap();
        assert!(service.list().await.unwrap().is_empty());
        assert_eq!(ctx.ledger.held(), 0);
    }

    #[tokio::test]
    async fn a_missing_lease_handle_traps() {
        let (_dir, service) = service().await;
        let (mut ctx, mut table) = capability(&service, &Limits::DEFAULT);
        let mut v = view(&mut ctx, &mut table);
        let ghost = Resource::<LeaseSlot>::new_borrow(7);
        assert!(v.name(ghost).await.is_err(), "a broken invariant is a trap");
    }

    #[tokio::test]
    async fn a_held_lock_is_a_conflict_value_remembered_until_the_next_call() {
        let (_dir, service) = service().await;
        let other = Owner::new_session();
        scoped(&service, other.clone())
            .acquire("db", Duration::from_secs(30))
            .await
            .unwrap();
        let (mut ctx, mut table) = capability(&service, &Limits::DEFAULT);
        let mut v = view(&mut ctx, &mut table);
        let Err(wit::LockError::Conflict(c)) = acquire(&mut v, "db").await else {
            panic!("expected a conflict")
        };
        assert_eq!(
            (c.resource.as_str(), c.owner.as_str()),
            ("project:projid/res:db", other.id.as_str())
        );
        let key = (c.resource.clone(), c.owner.clone());
        assert_eq!(ctx.conflicts()[&key].owner, other.id);
        assert_eq!(ctx.handles, 0, "a refusal takes no handle");

        // A kept instance's next call starts with none reported.
        ctx.rebind(
            scoped(&service, Owner::new_session()),
            LeaseLedger::default(),
        );
        assert!(ctx.conflicts().is_empty());
    }

    #[tokio::test]
    async fn leases_held_and_handles_open_are_capped_as_values() {
        let (_dir, service) = service().await;
        let limits = Limits {
            leases: 2,
            lease_handles: 3,
            ..Limits::DEFAULT
        };
        let (mut ctx, mut table) = capability(&service, &limits);
        let mut v = view(&mut ctx, &mut table);
        let a = acquire(&mut v, "a").await.unwrap();
        let b = acquire(&mut v, "b").await.unwrap();
        let refused = acquire(&mut v, "c").await;
        assert!(
            matches!(&refused, Err(wit::LockError::Invalid(m)) if m == "too many leases held at once (at most 2); release one first"),
            "{refused:?}"
        );
        // Released, `a` no longer counts as held, but its handle is open.
        v.release(borrow(&a)).await.unwrap().unwrap();
        acquire(&mut v, "c").await.unwrap();
        let refused = acquire(&mut v, "d").await;
        assert!(
            matches!(&refused, Err(wit::LockError::Invalid(m)) if m == "too many lease handles open at once (at most 3); drop leases you have released"),
            "{refused:?}"
        );
        v.drop(a).await.unwrap();
        v.release(borrow(&b)).await.unwrap().unwrap();
        acquire(&mut v, "d").await.unwrap();
        assert_eq!(service.list().await.unwrap().len(), 2);
    }

    #[tokio::test]
    async fn the_ledger_releases_what_the_plugin_kept_and_whatever_arrives_late() {
        let (_dir, service) = service().await;
        let (mut ctx, mut table) = capability(&service, &Limits::DEFAULT);
        let mut v = view(&mut ctx, &mut table);
        acquire(&mut v, "a").await.unwrap();
        acquire(&mut v, "b").await.unwrap();
        assert_eq!(ctx.ledger.held(), 2);
        assert_eq!(ctx.ledger.release_all().await, 2);
        assert!(service.list().await.unwrap().is_empty());

        // After the call is over, a lease that arrives is released at once.
        let mut v = view(&mut ctx, &mut table);
        acquire(&mut v, "late").await.unwrap();
        assert!(service.list().await.unwrap().is_empty());
        assert_eq!(ctx.ledger.held(), 0);
    }
}
