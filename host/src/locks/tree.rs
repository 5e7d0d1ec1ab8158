//! Tree locks: a lease on a directory tree, held by exactly one acquisition.
//!
//! Apply writes a whole project tree, so its lock must exclude every other
//! apply that could write any of the same files — a second apply in the same
//! session as much as one in another process, and an apply on a project
//! nested inside this one (or containing it) as much as one on the same
//! directory. A tree lock is a row in `locks` like any other lease (same
//! token, TTL, renewal, release, listing and force-release) that also
//! records the canonical path it covers (`tree_path`, see [`tree_key`]).
//! Acquiring one is never re-entrant and fails with
//! [`LockError::Conflict`] while any live tree lock covers an ancestor, a
//! descendant or the same path, naming that lock's holder. Expired tree
//! locks block nothing and are taken over with a fresh token.
//!
//! The overlap check and the insert run in one write transaction: `BEGIN
//! IMMEDIATE` on SQLite (one writer at a time), and on PostgreSQL a
//! transaction-scoped advisory lock on one constant key taken first, because
//! two acquisitions of different rows (`/repo` and `/repo/sub`) would
//! otherwise both find no overlap and both insert.

use std::time::Duration;

use super::{
    check_resource, conflict_from, grant_from, wait_through_conflicts, Grant, LockError, LockGuard,
    LockService, Owner,
};

/// The key a tree lock stores for `path`: the path with exactly one trailing
/// `/`, so that one key is a prefix of another exactly when one tree
/// contains the other (`/a/` contains `/a/b/`, not `/ab/`). `path` should be
/// canonical (absolute, symlinks resolved): the service compares strings.
pub fn tree_key(path: &str) -> String {
    let trimmed = path.trim_end_matches('/');
    format!("{trimmed}/")
}

impl LockService {
    /// Try once to take a tree lock named `resource` on the directory tree
    /// at `path` (canonical). Fails fast with [`LockError::Conflict`] naming
    /// the holder while a live tree lock covers `path`, an ancestor or a
    /// descendant of it — whoever holds it, this owner included — or while
    /// `resource` is held as an ordinary lease.
    pub async fn try_acquire_tree(
        &self,
        resource: &str,
        path: &str,
        owner: &Owner,
        operation: &str,
        ttl: Duration,
    ) -> Result<Grant, LockError> {
        check_resource(resource)?;
        let key = tree_key(path);
        let sql = &self.inner.sql;
        let sent_at = std::time::Instant::now();
        let gate = super::sql::tree_gate(self.inner.db.backend, &key);
        let mut tx = self.inner.db.begin_write_with(gate.as_deref()).await?;
        let overlap = sqlx::query(&sql.tree_overlap)
            .bind(&key)
            .fetch_optional(tx.conn())
            .await?;
        if let Some(row) = overlap {
            let conflict = conflict_from(&row, None)?;
            tx.rollback().await?;
            return Err(LockError::Conflict(Box::new(conflict)));
        }
        let granted = self
            .bind_acquire(
                sqlx::query(&sql.tree_acquire),
                resource,
                owner,
                operation,
                ttl,
            )?
            .bind(&key)
            .fetch_optional(tx.conn())
            .await?;
        let Some(row) = granted else {
            // The name is held live as an ordinary (non-tree) lease.
            let holder = sqlx::query(&sql.holder)
                .bind(resource)
                .fetch_one(tx.conn())
                .await?;
            let conflict = conflict_from(&holder, Some(resource))?;
            tx.rollback().await?;
            return Err(LockError::Conflict(Box::new(conflict)));
        };
        let grant = grant_from(&row, resource, sent_at)?;
        tx.commit().await?;
        Ok(grant)
    }

    /// SQLite: try once to take the tree lock in the open write
    /// transaction `tx`, in one request (the overlap check and the insert
    /// together). `None` if it is held (the caller goes the ordinary way,
    /// [`LockService::lock_tree`], which waits or names the holder).
    pub(crate) async fn try_tree_in(
        &self,
        tx: &mut crate::db::WriteTx,
        resource: &str,
        path: &str,
        owner: &Owner,
        operation: &str,
        ttl: Duration,
    ) -> Result<Option<LockGuard>, LockError> {
        let key = tree_key(path);
        let sent_at = std::time::Instant::now();
        let query = sqlx::query(&self.inner.sql.tree_acquire_checked);
        let query = self
            .bind_acquire(query, resource, owner, operation, ttl)?
            .bind(&key);
        let groups = tx.batch(query, false).await?;
        self.tree_guard(&groups, resource, owner, ttl, sent_at)
    }

    /// [`LockService::try_tree_in`] in a write transaction begun for it,
    /// which stays open (whether the lock was taken or not): the caller
    /// commits it, with writes of its own if it likes. On SQLite one
    /// request; on PostgreSQL two, the `BEGIN` with the [`tree_gate`]
    /// locks, then the checked insert.
    ///
    /// [`tree_gate`]: super::sql::tree_gate
    pub(crate) async fn try_tree_begin(
        &self,
        resource: &str,
        path: &str,
        owner: &Owner,
        operation: &str,
        ttl: Duration,
    ) -> Result<(crate::db::WriteTx, Option<LockGuard>), LockError> {
        let key = tree_key(path);
        let db = &self.inner.db;
        if let Some(gate) = super::sql::tree_gate(db.backend, &key) {
            let mut tx = db.begin_write_with(Some(&gate)).await?;
            let sent_at = std::time::Instant::now();
            let query = sqlx::query(&self.inner.sql.tree_acquire_gated);
            let query = self
                .bind_acquire(query, resource, owner, operation, ttl)?
                .bind(&key);
            let groups = tx.batch(query, false).await?;
            let guard = match groups.first().and_then(|rows| rows.first()) {
                Some(row) => Some(self.guard_from(row, resource, owner, ttl, sent_at)?),
                None => None,
            };
            return Ok((tx, guard));
        }
        let sql = db.batch_sql(
            &[self.inner.sql.tree_acquire_checked.as_str()],
            crate::db::Open::Begin,
        );
        let sent_at = std::time::Instant::now();
        let query = self
            .bind_acquire(sqlx::query(&sql), resource, owner, operation, ttl)?
            .bind(&key);
        let (tx, groups) = db.begin_batch(query).await?;
        let guard = self.tree_guard(&groups, resource, owner, ttl, sent_at)?;
        Ok((tx, guard))
    }

    /// The guard of the tree lock `tree_acquire_checked` took (its rows in
    /// `groups`), if it took one.
    fn tree_guard(
        &self,
        groups: &[Vec<sqlx::any::AnyRow>],
        resource: &str,
        owner: &Owner,
        ttl: Duration,
        sent_at: std::time::Instant,
    ) -> Result<Option<LockGuard>, LockError> {
        let overlap = groups.first().is_some_and(|rows| !rows.is_empty());
        match groups.get(1).and_then(|rows| rows.first()) {
            Some(row) if !overlap => Ok(Some(self.guard_from(row, resource, owner, ttl, sent_at)?)),
            _ => Ok(None),
        }
    }

    /// [`LockService::try_acquire_tree`], waiting up to `wait` with jittered
    /// backoff while the tree is held. `wait = 0` fails fast.
    pub async fn acquire_tree(
        &self,
        resource: &str,
        path: &str,
        owner: &Owner,
        operation: &str,
        ttl: Duration,
        wait: Duration,
    ) -> Result<Grant, LockError> {
        wait_through_conflicts(wait, || {
            self.try_acquire_tree(resource, path, owner, operation, ttl)
        })
        .await
    }

    /// Take a tree lock and wrap it in a [`LockGuard`] that renews it every
    /// TTL/3 and releases it when dropped.
    pub async fn lock_tree(
        &self,
        resource: &str,
        path: &str,
        owner: &Owner,
        operation: &str,
        ttl: Duration,
        wait: Duration,
    ) -> Result<LockGuard, LockError> {
        let grant = self
            .acquire_tree(resource, path, owner, operation, ttl, wait)
            .await?;
        Ok(LockGuard::start(
            self.clone(),
            owner.clone(),
            grant,
            self.clamp_ttl(ttl),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tree_keys_contain_each_other_only_along_a_path() {
        assert_eq!(tree_key("/repo"), "/repo/");
        assert_eq!(tree_key("/repo/"), "/repo/");
        assert_eq!(tree_key("/"), "/");
        assert!(tree_key("/repo/sub").starts_with(&tree_key("/repo")));
        assert!(!tree_key("/repository").starts_with(&tree_key("/repo")));
    }
}
