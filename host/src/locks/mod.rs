//! The lock service: leases on named resources, shared by every session and
//! every host that uses the same database.
//!
//! One `locks` table holds one row per held resource. `acquire` inserts a
//! row, takes over a row whose lease expired, or extends a row the same
//! owner already holds (re-entrant, counted in `holds`). Expiry is computed
//! from the database clock. Every new lease gets a fencing token from a
//! monotonic counter; state writes made under a lease check that token
//! (see [`Fence`]), so a holder that lost its lease can
//! no longer write.

mod error;
mod fence;
mod guard;
mod scoped;
mod sql;
mod tree;

use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use sqlx::Row;

pub use error::{format_ms, local_now_ms, Holder, LockConflict, LockError};
pub use fence::Fence;
pub use guard::LockGuard;
pub use scoped::{Lease, ScopedLocks};
pub use tree::tree_key;

use crate::db::Db;
use sql::LockSql;
pub(crate) use sql::{end_sql, new_token, release_sql, takeover};

/// Default lease length.
pub const DEFAULT_TTL: Duration = Duration::from_secs(300);
/// Shortest lease the service grants.
pub const MIN_TTL: Duration = Duration::from_secs(5);
/// Longest lease the service grants.
pub const MAX_TTL: Duration = Duration::from_secs(3600);

/// Clamp a requested lease length to [`MIN_TTL`, `MAX_TTL`].
pub fn clamp_ttl(ttl: Duration) -> Duration {
    ttl.clamp(MIN_TTL, MAX_TTL)
}

/// One session's identity: the owner of every lock the session takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    /// Unique id of the session (`host:pid:random`).
    pub id: String,
    /// Where the session runs.
    pub holder: Holder,
}

impl Owner {
    /// A fresh owner identity for a new session in this process.
    pub fn new_session() -> Self {
        let host = gethostname::gethostname().to_string_lossy().into_owned();
        let pid = std::process::id() as i64;
        let user = std::env::var("USER")
            .or_else(|_| std::env::var("LOGNAME"))
            .unwrap_or_else(|_| uid_name());
        let short = uuid::Uuid::new_v4().simple().to_string();
        Owner {
            id: format!("{host}:{pid}:{}", &short[..8]),
            holder: Holder { host, pid, user },
        }
    }
}

/// `uid N` from the owner of `/proc/self` when no user name is in the
/// environment (daemons, CI).
fn uid_name() -> String {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        if let Ok(meta) = std::fs::metadata("/proc/self") {
            return format!("uid {}", meta.uid());
        }
    }
    "unknown".into()
}

/// A lease as stored: what [`LockService::list`] returns.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LockInfo {
    /// Resource name.
    pub resource: String,
    /// Owning session.
    pub owner: String,
    /// Fencing token.
    pub token: i64,
    /// What the holder is doing.
    pub operation: String,
    /// Where the holder runs.
    pub holder: Holder,
    /// Re-entrant hold count.
    pub holds: i64,
    /// Acquisition time (ms since the epoch).
    pub acquired_at: i64,
    /// Expiry time (ms since the epoch).
    pub expires_at: i64,
    /// The lease has expired: any session may take it over.
    pub stale: bool,
}

/// A granted lease (before it is wrapped in a guard).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// Resource name.
    pub resource: String,
    /// Fencing token.
    pub token: i64,
    /// Hold count after this acquisition (1 unless re-entrant).
    pub holds: i64,
    /// When the lease was first acquired (ms since the epoch, database clock).
    /// On PostgreSQL this is read when the statement starts, so after a wait
    /// for a contended row it may be earlier than the grant: the lease is
    /// then shorter than asked, never longer.
    pub acquired_at: i64,
    /// When this grant was written (database clock, read after any wait).
    pub granted_at: i64,
    /// When the granting request was sent, on this machine's monotonic
    /// clock: the lease is certainly valid until `sent_at + ttl`, and no
    /// longer should be assumed without a renewal.
    pub sent_at: std::time::Instant,
    /// Expiry (ms since the epoch, database clock).
    pub expires_at: i64,
}

/// The lease service. Cheap to clone; clones share the pool.
#[derive(Clone)]
pub struct LockService {
    inner: Arc<Inner>,
}

struct Inner {
    db: Db,
    sql: LockSql,
    min_ttl: Duration,
}

impl std::fmt::Debug for LockService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LockService")
            .field("backend", &self.inner.db.backend)
            .finish()
    }
}

fn check_resource(resource: &str) -> Result<(), LockError> {
    let ok = !resource.is_empty()
        && resource.len() <= 200
        && resource
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.:/".contains(c));
    if ok {
        Ok(())
    } else {
        Err(LockError::InvalidResource(resource.to_string()))
    }
}

impl LockService {
    /// A lock service on `db` (already migrated).
    pub fn new(db: Db) -> Self {
        Self::with_min_ttl(db, MIN_TTL)
    }

    /// A lock service that grants leases as short as `min_ttl` (below
    /// [`MIN_TTL`], at least 100 ms). For fault-injection workloads and tests
    /// that need leases to run out quickly; production keeps the default.
    pub fn with_min_ttl(db: Db, min_ttl: Duration) -> Self {
        let sql = LockSql::new(&db);
        let min_ttl = min_ttl.clamp(Duration::from_millis(100), MAX_TTL);
        LockService {
            inner: Arc::new(Inner { db, sql, min_ttl }),
        }
    }

    /// Clamp a requested lease length to this service's bounds.
    pub fn clamp_ttl(&self, ttl: Duration) -> Duration {
        ttl.clamp(self.inner.min_ttl, MAX_TTL)
    }

    /// The database this service uses.
    pub fn db(&self) -> &Db {
        &self.inner.db
    }

    /// Try once to take `resource` for `owner`; fail fast with
    /// [`LockError::Conflict`] naming the holder.
    pub async fn try_acquire(
        &self,
        resource: &str,
        owner: &Owner,
        operation: &str,
        ttl: Duration,
    ) -> Result<Grant, LockError> {
        check_resource(resource)?;
        // A conflicting row may be released between our upsert and our read of
        // the holder; then simply try again.
        for _ in 0..8 {
            let sent_at = std::time::Instant::now();
            let query = self.bind_acquire(
                sqlx::query(&self.inner.sql.acquire),
                resource,
                owner,
                operation,
                ttl,
            )?;
            // One statement on both backends: the token comes from the
            // counter (SQLite) or a sequence (PostgreSQL).
            let granted = query
                .fetch_optional(&mut self.inner.db.writer().await?)
                .await?;
            if let Some(row) = granted {
                return Ok(grant_from(&row, resource, sent_at)?);
            }
            let holder = sqlx::query(&self.inner.sql.holder)
                .bind(resource)
                .fetch_optional(self.inner.db.reader())
                .await?;
            if let Some(row) = holder {
                return Err(LockError::Conflict(Box::new(conflict_from(
                    &row,
                    Some(resource),
                )?)));
            }
        }
        Err(LockError::Contended {
            resource: resource.to_string(),
        })
    }

    /// The statement that takes a lease (as [`LockService::try_acquire`]
    /// does), for a caller that sends it with other statements in one
    /// request: bind its values with [`LockService::bind_acquire`], turn
    /// the row it returns into a guard with [`LockService::guard_from`]; no
    /// row means the lease is held by someone else.
    pub(crate) fn acquire_sql(&self) -> &str {
        &self.inner.sql.acquire
    }

    /// Bind $1–$7 of [`LockService::acquire_sql`].
    pub(crate) fn bind_acquire<'q>(
        &self,
        query: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
        resource: &'q str,
        owner: &'q Owner,
        operation: &'q str,
        ttl: Duration,
    ) -> Result<sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>, LockError> {
        check_resource(resource)?;
        let ttl_ms = self.clamp_ttl(ttl).as_millis() as i64;
        Ok(query
            .bind(resource)
            .bind(&owner.id)
            .bind(operation)
            .bind(&owner.holder.host)
            .bind(owner.holder.pid)
            .bind(&owner.holder.user)
            .bind(ttl_ms))
    }

    /// The guard of the lease granted by [`LockService::acquire_sql`]'s
    /// `row` (sent at `sent_at`): renewed every TTL/3 from now on.
    pub(crate) fn guard_from(
        &self,
        row: &sqlx::any::AnyRow,
        resource: &str,
        owner: &Owner,
        ttl: Duration,
        sent_at: std::time::Instant,
    ) -> Result<LockGuard, LockError> {
        let grant = grant_from(row, resource, sent_at)?;
        Ok(LockGuard::start(
            self.clone(),
            owner.clone(),
            grant,
            self.clamp_ttl(ttl),
        ))
    }

    /// Take `resource`, waiting up to `wait` with jittered exponential
    /// backoff while another session holds it. `wait = 0` fails fast.
    pub async fn acquire(
        &self,
        resource: &str,
        owner: &Owner,
        operation: &str,
        ttl: Duration,
        wait: Duration,
    ) -> Result<Grant, LockError> {
        wait_through_conflicts(wait, || self.try_acquire(resource, owner, operation, ttl)).await
    }

    /// Take `resource` and wrap the lease in a [`LockGuard`] that renews it
    /// every TTL/3 and releases it when dropped.
    pub async fn lock(
        &self,
        resource: &str,
        owner: &Owner,
        operation: &str,
        ttl: Duration,
        wait: Duration,
    ) -> Result<LockGuard, LockError> {
        let grant = self.acquire(resource, owner, operation, ttl, wait).await?;
        Ok(LockGuard::start(
            self.clone(),
            owner.clone(),
            grant,
            self.clamp_ttl(ttl),
        ))
    }

    /// Extend a lease by `ttl` from now. Fails with [`LockError::Expired`]
    /// if the lease is no longer current.
    pub async fn renew(
        &self,
        resource: &str,
        owner: &Owner,
        token: i64,
        ttl: Duration,
    ) -> Result<i64, LockError> {
        let ttl_ms = self.clamp_ttl(ttl).as_millis() as i64;
        let row: Option<i64> = sqlx::query_scalar(&self.inner.sql.renew)
            .bind(resource)
            .bind(&owner.id)
            .bind(token)
            .bind(ttl_ms)
            .fetch_optional(&mut self.inner.db.writer().await?)
            .await?;
        row.ok_or_else(|| LockError::Expired {
            resource: resource.to_string(),
            token,
        })
    }

    /// Whether `(resource, owner, token)` is a current, unexpired lease.
    pub async fn is_current(
        &self,
        resource: &str,
        owner: &Owner,
        token: i64,
    ) -> Result<bool, LockError> {
        let row: Option<i64> = sqlx::query_scalar(&self.inner.sql.check)
            .bind(resource)
            .bind(&owner.id)
            .bind(token)
            .fetch_optional(self.inner.db.reader())
            .await?;
        Ok(row.is_some())
    }

    /// Release one hold of a lease. Re-entrant holds are counted: the row
    /// goes away only when the outermost hold is released. Releasing a lease
    /// that was already lost is not an error.
    pub async fn release(
        &self,
        resource: &str,
        owner: &Owner,
        token: i64,
    ) -> Result<(), LockError> {
        sqlx::query(self.inner.sql.release)
            .bind(resource)
            .bind(&owner.id)
            .bind(token)
            .execute(&mut self.inner.db.writer().await?)
            .await?;
        Ok(())
    }

    /// Release every lease `owner` holds (shutdown, end of session).
    /// Returns how many were released.
    pub async fn release_all_for_owner(&self, owner: &str) -> Result<u64, LockError> {
        let n = sqlx::query(self.inner.sql.release_all)
            .bind(owner)
            .execute(&mut self.inner.db.writer().await?)
            .await?
            .rows_affected();
        Ok(n)
    }

    /// Every lease in the table, expired ones marked `stale`.
    pub async fn list(&self) -> Result<Vec<LockInfo>, LockError> {
        let rows = sqlx::query(&self.inner.sql.list)
            .fetch_all(self.inner.db.reader())
            .await?;
        rows.iter()
            .map(|row| {
                Ok(LockInfo {
                    resource: row.try_get(0)?,
                    owner: row.try_get(1)?,
                    token: row.try_get(2)?,
                    operation: row.try_get(3)?,
                    holder: Holder {
                        host: row.try_get(4)?,
                        pid: row.try_get(5)?,
                        user: row.try_get(6)?,
                    },
                    holds: row.try_get(7)?,
                    acquired_at: row.try_get(8)?,
                    expires_at: row.try_get(9)?,
                    stale: row.try_get::<i64, _>(10)? != 0,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(LockError::from)
    }

    /// Remove a lease whoever holds it, and advance the token counter so
    /// that the old holder is fenced out. Returns the removed `(owner, token)`.
    pub async fn force_release(&self, resource: &str) -> Result<Option<(String, i64)>, LockError> {
        let mut tx = self.inner.db.begin_write().await?;
        let row = sqlx::query(self.inner.sql.force_release)
            .bind(resource)
            .fetch_optional(tx.conn())
            .await?;
        sqlx::query(self.inner.sql.bump_counter)
            .execute(tx.conn())
            .await?;
        tx.commit().await?;
        row.map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .transpose()
            .map_err(LockError::Database)
    }
}

/// Call `attempt` until it does not fail with a conflict, waiting up to
/// `wait` with jittered exponential backoff between attempts. `wait = 0`
/// fails fast with the conflict; a longer wait ends in [`LockError::Timeout`]
/// carrying the last conflict.
async fn wait_through_conflicts<F, Fut>(wait: Duration, mut attempt: F) -> Result<Grant, LockError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Grant, LockError>>,
{
    let start = tokio::time::Instant::now();
    let mut backoff = Duration::from_millis(20);
    loop {
        match attempt().await {
            Err(LockError::Conflict(conflict)) => {
                let waited = start.elapsed();
                if waited >= wait {
                    return Err(if wait.is_zero() {
                        LockError::Conflict(conflict)
                    } else {
                        LockError::Timeout { waited, conflict }
                    });
                }
                let jitter = rand::thread_rng().gen_range(0.5..1.5);
                let sleep = backoff.mul_f64(jitter).min(wait - waited);
                tokio::time::sleep(sleep).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
            }
            other => return other,
        }
    }
}

/// The lease granted by a row of an acquire statement (its first five
/// columns: token, holds, acquired_at, expires_at, granted_at), sent at
/// `sent_at`.
fn grant_from(
    row: &sqlx::any::AnyRow,
    resource: &str,
    sent_at: std::time::Instant,
) -> Result<Grant, sqlx::Error> {
    Ok(Grant {
        resource: resource.to_string(),
        token: row.try_get(0)?,
        holds: row.try_get(1)?,
        acquired_at: row.try_get(2)?,
        expires_at: row.try_get(3)?,
        granted_at: row.try_get(4)?,
        sent_at,
    })
}

/// The conflict named by a holder row (`owner, operation, holder_host,
/// holder_pid, holder_user, acquired_at, expires_at`, and `resource`
/// unless given).
fn conflict_from(
    row: &sqlx::any::AnyRow,
    resource: Option<&str>,
) -> Result<LockConflict, sqlx::Error> {
    Ok(LockConflict {
        resource: match resource {
            Some(r) => r.to_string(),
            None => row.try_get("resource")?,
        },
        owner: row.try_get("owner")?,
        operation: row.try_get("operation")?,
        holder: Holder {
            host: row.try_get("holder_host")?,
            pid: row.try_get("holder_pid")?,
            user: row.try_get("holder_user")?,
        },
        acquired_at: row.try_get("acquired_at")?,
        expires_at: row.try_get("expires_at")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_is_clamped() {
        assert_eq!(clamp_ttl(Duration::from_millis(1)), MIN_TTL);
        assert_eq!(clamp_ttl(Duration::from_secs(7200)), MAX_TTL);
        assert_eq!(clamp_ttl(Duration::from_secs(60)), Duration::from_secs(60));
    }

    #[test]
    fn resource_names_are_checked() {
        assert!(check_resource("plan:abc").is_ok());
        assert!(check_resource("project:x/res:y-1.2_z").is_ok());
        assert!(check_resource("").is_err());
        assert!(check_resource("a b").is_err());
        assert!(check_resource(&"a".repeat(201)).is_err());
    }
}
