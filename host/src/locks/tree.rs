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
//! The overlap check and the insert run in one write transaction, sent as
//! one request: `BEGIN IMMEDIATE` on SQLite (one writer at a time), and on
//! PostgreSQL transaction-scoped advisory locks keyed by the path taken
//! first ([`tree_gate`](super::sql::tree_gate)), because two acquisitions
//! of different rows (`/repo` and `/repo/sub`) would otherwise both find no
//! overlap and both insert. PostgreSQL's request is a simple query, with
//! the values written in ([`inline`](super::sql::inline)).

use std::time::Duration;

use crate::db::Open;

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
        let db = &self.inner.db;
        let statements = &self.inner.sql.tree_try;
        let sent_at = std::time::Instant::now();
        let groups = match super::sql::tree_gate(db.backend, &key) {
            Some(gate) => {
                let call = Call {
                    resource,
                    owner,
                    operation,
                    ttl,
                    key: &key,
                };
                let text = self.gated(&gate, statements, &call)?;
                let mut groups = db.simple_transaction(&text).await?;
                groups.remove(0); // the gate
                groups
            }
            None => {
                let sql = db.batch_sql(&statements.each_ref().map(String::as_str), Open::Both);
                let query = self
                    .bind_acquire(sqlx::query(&sql), resource, owner, operation, ttl)?
                    .bind(&key);
                db.batch(query).await?
            }
        };
        let first = |i: usize| groups.get(i).and_then(|rows| rows.first());
        if let Some(overlap) = first(0) {
            return Err(LockError::Conflict(Box::new(conflict_from(overlap, None)?)));
        }
        if let Some(granted) = first(1) {
            return Ok(grant_from(granted, resource, sent_at)?);
        }
        // The name is held live as an ordinary (non-tree) lease.
        match first(2) {
            Some(holder) => {
                let conflict = conflict_from(holder, Some(resource))?;
                Err(LockError::Conflict(Box::new(conflict)))
            }
            None => Err(LockError::Contended {
                resource: resource.to_string(),
            }),
        }
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
    /// commits it, with writes of its own if it likes. One request: on
    /// PostgreSQL the `BEGIN`, the [`tree_gate`] locks and the checked
    /// insert as one simple query.
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
            let call = Call {
                resource,
                owner,
                operation,
                ttl,
                key: &key,
            };
            let insert = std::slice::from_ref(&self.inner.sql.tree_try[1]);
            let text = self.gated(&gate, insert, &call)?;
            let sent_at = std::time::Instant::now();
            let (tx, groups) = db.begin_simple(&text).await?;
            let guard = match groups.get(1).and_then(|rows| rows.first()) {
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

    /// PostgreSQL: the [`tree_gate`](super::sql::tree_gate) locks `gate`,
    /// then `statements` (with $1–$8 of
    /// [`LockSql::tree_try`](super::sql::LockSql::tree_try)) with `call`'s
    /// values written in: the text of one simple query, without its
    /// `BEGIN` and `COMMIT`.
    fn gated(
        &self,
        gate: &str,
        statements: &[String],
        call: &Call<'_>,
    ) -> Result<String, LockError> {
        use super::sql::{inline, Literal::*};
        check_resource(call.resource)?;
        let ttl_ms = self.clamp_ttl(call.ttl).as_millis() as i64;
        let holder = &call.owner.holder;
        let args = [
            Text(call.resource),
            Text(&call.owner.id),
            Text(call.operation),
            Text(&holder.host),
            Int(holder.pid),
            Text(&holder.user),
            Int(ttl_ms),
            Text(call.key),
        ];
        let mut text = gate.to_string();
        for statement in statements {
            text.push_str(";\n");
            text.push_str(&inline(statement, &args)?);
        }
        Ok(text)
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

/// The arguments of one tree-lock acquisition.
struct Call<'a> {
    resource: &'a str,
    owner: &'a Owner,
    operation: &'a str,
    ttl: Duration,
    key: &'a str,
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
