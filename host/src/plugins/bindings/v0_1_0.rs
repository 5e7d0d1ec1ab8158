//! Host bindings for `lockstep:plugin@0.1.0` (`wit/v0.1.0/` at the repository
//! root), served beside the latest version.
//!
//! The imports of 0.1.0 are implemented on the same capability types as the
//! latest ones (`host/`), by delegating to them; values cross between the
//! two versions through the `From` conversions below: the host's arguments
//! to 0.1.0's, the plugin's answers to the latest. Every 0.1.0 type is still shaped exactly like its latest
//! counterpart (0.2.0 only added the `progress` import), so each conversion
//! is field by field; a later version that changes a type changes only its
//! conversion here.

use wasmtime::component::{HasSelf, Linker, Resource};

use super::latest::lockstep::plugin as latest;
use crate::plugins::host::{
    HasLocks, LeaseSlot, LocksView, LogCtx, PluginState, Types, WorkspaceCtx,
};

#[allow(missing_docs, clippy::all)]
mod generated {
    wasmtime::component::bindgen!({
        world: "plugin",
        path: "../wit/v0.1.0",
        imports: { default: async | trappable },
        exports: { default: async },
        with: {
            "lockstep:plugin/locks.lease": crate::plugins::host::LeaseSlot,
        },
    });
}

pub use generated::exports;
use generated::lockstep::plugin::{locks, log, types, workspace};

/// Add this version's imports to `linker`, each capability through its
/// accessor on [`PluginState`].
pub fn add_to_linker(linker: &mut Linker<PluginState>) -> wasmtime::Result<()> {
    types::add_to_linker::<_, Types>(linker, |_| Types)?;
    workspace::add_to_linker::<_, HasSelf<WorkspaceCtx>>(linker, PluginState::workspace)?;
    locks::add_to_linker::<_, HasLocks>(linker, PluginState::locks)?;
    log::add_to_linker::<_, HasSelf<LogCtx>>(linker, PluginState::log)
}

impl types::Host for Types {}

impl workspace::Host for WorkspaceCtx {
    async fn list(
        &mut self,
        pattern: String,
    ) -> wasmtime::Result<Result<Vec<String>, types::FsError>> {
        Ok(latest::workspace::Host::list(self, pattern)
            .await?
            .map_err(Into::into))
    }

    async fn read(&mut self, path: String) -> wasmtime::Result<Result<Vec<u8>, types::FsError>> {
        Ok(latest::workspace::Host::read(self, path)
            .await?
            .map_err(Into::into))
    }

    async fn metadata(
        &mut self,
        path: String,
    ) -> wasmtime::Result<Result<types::FileInfo, types::FsError>> {
        Ok(latest::workspace::Host::metadata(self, path)
            .await?
            .map(Into::into)
            .map_err(Into::into))
    }
}

impl locks::Host for LocksView<'_> {
    async fn acquire(
        &mut self,
        name: String,
        ttl_ms: u64,
    ) -> wasmtime::Result<Result<Resource<LeaseSlot>, types::LockError>> {
        Ok(latest::locks::Host::acquire(self, name, ttl_ms)
            .await?
            .map_err(Into::into))
    }
}

impl locks::HostLease for LocksView<'_> {
    async fn name(&mut self, lease: Resource<LeaseSlot>) -> wasmtime::Result<String> {
        latest::locks::HostLease::name(self, lease).await
    }

    async fn token(&mut self, lease: Resource<LeaseSlot>) -> wasmtime::Result<u64> {
        latest::locks::HostLease::token(self, lease).await
    }

    async fn renew(
        &mut self,
        lease: Resource<LeaseSlot>,
        ttl_ms: u64,
    ) -> wasmtime::Result<Result<(), types::LockError>> {
        Ok(latest::locks::HostLease::renew(self, lease, ttl_ms)
            .await?
            .map_err(Into::into))
    }

    async fn release(
        &mut self,
        lease: Resource<LeaseSlot>,
    ) -> wasmtime::Result<Result<(), types::LockError>> {
        Ok(latest::locks::HostLease::release(self, lease)
            .await?
            .map_err(Into::into))
    }

    async fn drop(&mut self, lease: Resource<LeaseSlot>) -> wasmtime::Result<()> {
        latest::locks::HostLease::drop(self, lease).await
    }
}

impl log::Host for LogCtx {
    async fn log(&mut self, level: log::Level, message: String) -> wasmtime::Result<()> {
        latest::log::Host::log(self, level.into(), message).await
    }
}

// What the host hands a 0.1.0 plugin: latest → 0.1.0.

impl From<latest::types::Action> for types::Action {
    fn from(a: latest::types::Action) -> Self {
        types::Action {
            name: a.name,
            params: a.params,
        }
    }
}

impl From<latest::types::Step> for types::Step {
    fn from(s: latest::types::Step) -> Self {
        types::Step {
            id: s.id,
            title: s.title,
            params: s.params,
            targets: s.targets,
        }
    }
}

impl From<latest::types::FsError> for types::FsError {
    fn from(e: latest::types::FsError) -> Self {
        use latest::types::FsError as E;
        match e {
            E::NotFound(p) => types::FsError::NotFound(p),
            E::Denied(p) => types::FsError::Denied(p),
            E::TooLarge(cap) => types::FsError::TooLarge(cap),
            E::Invalid(m) => types::FsError::Invalid(m),
            E::Io(m) => types::FsError::Io(m),
        }
    }
}

impl From<latest::types::FileInfo> for types::FileInfo {
    fn from(f: latest::types::FileInfo) -> Self {
        types::FileInfo {
            path: f.path,
            kind: match f.kind {
                latest::types::EntryKind::File => types::EntryKind::File,
                latest::types::EntryKind::Directory => types::EntryKind::Directory,
            },
            size: f.size,
        }
    }
}

impl From<latest::types::LockConflict> for types::LockConflict {
    fn from(c: latest::types::LockConflict) -> Self {
        types::LockConflict {
            resource: c.resource,
            owner: c.owner,
            operation: c.operation,
            holder: c.holder,
            acquired_at: c.acquired_at,
            expires_at: c.expires_at,
        }
    }
}

impl From<latest::types::LockError> for types::LockError {
    fn from(e: latest::types::LockError) -> Self {
        use latest::types::LockError as E;
        match e {
            E::Conflict(c) => types::LockError::Conflict(c.into()),
            E::Expired(x) => types::LockError::Expired(types::LockExpired {
                resource: x.resource,
                token: x.token,
            }),
            E::Invalid(m) => types::LockError::Invalid(m),
            E::Unavailable(m) => types::LockError::Unavailable(m),
        }
    }
}

// What a 0.1.0 plugin hands back: 0.1.0 → latest.

impl From<types::Step> for latest::types::Step {
    fn from(s: types::Step) -> Self {
        latest::types::Step {
            id: s.id,
            title: s.title,
            params: s.params,
            targets: s.targets,
        }
    }
}

impl From<types::PlanProposal> for latest::types::PlanProposal {
    fn from(p: types::PlanProposal) -> Self {
        latest::types::PlanProposal {
            summary: p.summary,
            steps: p.steps.into_iter().map(Into::into).collect(),
        }
    }
}

impl From<types::StepOutcome> for latest::types::StepOutcome {
    fn from(o: types::StepOutcome) -> Self {
        latest::types::StepOutcome {
            changes: o
                .changes
                .into_iter()
                .map(|c| match c {
                    types::Change::Write(w) => {
                        latest::types::Change::Write(latest::types::FileWrite {
                            path: w.path,
                            contents: w.contents,
                        })
                    }
                    types::Change::Delete(path) => latest::types::Change::Delete(path),
                })
                .collect(),
            summary: o.summary,
        }
    }
}

impl From<types::LockConflict> for latest::types::LockConflict {
    fn from(c: types::LockConflict) -> Self {
        latest::types::LockConflict {
            resource: c.resource,
            owner: c.owner,
            operation: c.operation,
            holder: c.holder,
            acquired_at: c.acquired_at,
            expires_at: c.expires_at,
        }
    }
}

impl From<types::LockError> for latest::types::LockError {
    fn from(e: types::LockError) -> Self {
        use latest::types::LockError as E;
        match e {
            types::LockError::Conflict(c) => E::Conflict(c.into()),
            types::LockError::Expired(x) => E::Expired(latest::types::LockExpired {
                resource: x.resource,
                token: x.token,
            }),
            types::LockError::Invalid(m) => E::Invalid(m),
            types::LockError::Unavailable(m) => E::Unavailable(m),
        }
    }
}

impl From<types::PluginError> for latest::types::PluginError {
    fn from(e: types::PluginError) -> Self {
        use latest::types::PluginError as E;
        match e {
            types::PluginError::InvalidInput(m) => E::InvalidInput(m),
            types::PluginError::Lock(l) => E::Lock(l.into()),
            types::PluginError::Retryable(m) => E::Retryable(m),
            types::PluginError::Permanent(m) => E::Permanent(m),
        }
    }
}

impl From<log::Level> for latest::log::Level {
    fn from(level: log::Level) -> Self {
        use latest::log::Level as L;
        match level {
            log::Level::Trace => L::Trace,
            log::Level::Debug => L::Debug,
            log::Level::Info => L::Info,
            log::Level::Warn => L::Warn,
            log::Level::Error => L::Error,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_survive_the_trip_through_0_1_0() {
        let conflict = latest::types::LockConflict {
            resource: "project:p/res:db".into(),
            owner: "o".into(),
            operation: "execute plan x".into(),
            holder: "h:1".into(),
            acquired_at: 1,
            expires_at: 2,
        };
        let old: types::LockError = latest::types::LockError::Conflict(conflict.clone()).into();
        let back: latest::types::LockError = old.into();
        assert_eq!(
            format!("{back:?}"),
            format!("{:?}", latest::types::LockError::Conflict(conflict))
        );

        let step = latest::types::Step {
            id: "s".into(),
            title: "t".into(),
            params: vec![("k".into(), "v".into())],
            targets: vec!["a".into()],
        };
        let old: types::Step = step.clone().into();
        assert_eq!(
            format!("{:?}", latest::types::Step::from(old)),
            format!("{step:?}")
        );

        let outcome = types::StepOutcome {
            changes: vec![
                types::Change::Write(types::FileWrite {
                    path: "a".into(),
                    contents: b"x".to_vec(),
                }),
                types::Change::Delete("b".into()),
            ],
            summary: "done".into(),
        };
        let new = latest::types::StepOutcome::from(outcome);
        assert_eq!(new.summary, "done");
        assert!(
            matches!(&new.changes[0], latest::types::Change::Write(w) if w.path == "a" && w.contents == b"x")
        );
        assert!(matches!(&new.changes[1], latest::types::Change::Delete(p) if p == "b"));

        let e = latest::types::PluginError::from(types::PluginError::Retryable("later".into()));
        assert!(matches!(e, latest::types::PluginError::Retryable(m) if m == "later"));
        assert!(matches!(
            latest::log::Level::from(log::Level::Warn),
            latest::log::Level::Warn
        ));
    }

    /// The 0.1.0 imports, called on the capabilities as a 0.1.0 plugin
    /// calls them, answer what the latest ones do, in 0.1.0's types.
    #[tokio::test]
    async fn the_0_1_0_imports_are_served_by_the_same_capabilities() {
        use std::sync::Arc;

        use crate::locks::{LockService, Owner, ScopedLocks};
        use crate::plugins::host::{LeaseLedger, LocksCtx};
        use crate::plugins::limits::Limits;
        use crate::plugins::log::PluginLog;
        use crate::workspace::ProjectView;
        use locks::{Host as _, HostLease as _};
        use workspace::Host as _;

        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("project");
        std::fs::create_dir_all(&root).unwrap();
        std::fs::write(root.join("a.txt"), "abc").unwrap();
        let mut ws = WorkspaceCtx::new(Arc::new(ProjectView::new(&root).unwrap()));
        let info = ws.metadata("a.txt".into()).await.unwrap().unwrap();
        assert!(matches!(info.kind, types::EntryKind::File) && info.size == 3);
        let outside = ws.read("../t.db".into()).await.unwrap();
        assert!(
            matches!(outside, Err(types::FsError::Denied(_))),
            "{outside:?}"
        );

        let log = PluginLog::new("p", "0.1.0", "plan", &Limits::DEFAULT);
        let mut ctx = LogCtx::new(log.clone());
        log::Host::log(&mut ctx, log::Level::Warn, "old".into())
            .await
            .unwrap();
        assert_eq!(log.stats().emitted, 1);

        let db = crate::db::Db::connect(&format!("sqlite://{}", dir.path().join("t.db").display()))
            .await
            .unwrap();
        let service = LockService::new(db);
        let scoped = |owner| ScopedLocks::new(service.clone(), owner, "projid", "test");
        scoped(Owner::new_session())
            .acquire("held", std::time::Duration::from_secs(30))
            .await
            .unwrap();
        let mut ctx = LocksCtx::new(
            scoped(Owner::new_session()),
            LeaseLedger::default(),
            &Limits::DEFAULT,
        );
        let mut table = wasmtime::component::ResourceTable::new();
        let mut view = LocksView {
            ctx: &mut ctx,
            table: &mut table,
        };
        let held = view.acquire("held".into(), 30_000).await.unwrap();
        assert!(
            matches!(&held, Err(types::LockError::Conflict(c)) if c.resource == "project:projid/res:held"),
            "{held:?}"
        );
        let lease = view.acquire("free".into(), 30_000).await.unwrap().unwrap();
        let name = view.name(Resource::new_borrow(lease.rep())).await.unwrap();
        assert_eq!(name, "project:projid/res:free");
        view.drop(lease).await.unwrap();
        assert_eq!(
            service.list().await.unwrap().len(),
            1,
            "only the other session's lock"
        );
    }
}
