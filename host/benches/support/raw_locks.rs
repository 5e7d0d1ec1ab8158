//! The statements `LockService` issues for one acquire + release, written
//! out by hand and sent straight through sqlx: the baseline the lock
//! benchmarks compare against.

use lockstep::locks::Owner;
use lockstep::store::{Backend, Db};
use sqlx::Row;

/// Lease length used by the baselines, in milliseconds.
const TTL_MS: i64 = 60_000;

/// Acquire and release `resource` for `owner` with raw SQL.
pub async fn acquire_release(db: &Db, owner: &Owner, resource: &str) {
    let n = db.now_ms();
    let token = match db.backend {
        Backend::Sqlite => "$8",
        Backend::Postgres => "nextval('lock_token_seq')",
    };
    let acquire = format!(
        "INSERT INTO locks (resource, owner, token, operation, holder_host, holder_pid, holder_user, holds, acquired_at, expires_at)
         VALUES ($1, $2, {token}, $3, $4, $5, $6, 1, {n}, {n} + $7)
         ON CONFLICT (resource) DO UPDATE SET token = excluded.token, holds = 1, owner = excluded.owner
         WHERE locks.owner = excluded.owner OR locks.expires_at <= excluded.acquired_at
         RETURNING token"
    );
    let query = sqlx::query(&acquire)
        .bind(resource)
        .bind(&owner.id)
        .bind("bench")
        .bind(&owner.holder.host)
        .bind(owner.holder.pid)
        .bind(&owner.holder.user)
        .bind(TTL_MS);
    match db.backend {
        Backend::Sqlite => {
            let mut tx = db.begin_write().await.unwrap();
            let t: i64 = sqlx::query_scalar(
                "UPDATE lock_counter SET value = value + 1 WHERE id = 1 RETURNING value",
            )
            .fetch_one(&mut *tx)
            .await
            .unwrap();
            let token: i64 = query.bind(t).fetch_one(&mut *tx).await.unwrap().get(0);
            tx.commit().await.unwrap();
            let mut tx = db.begin_write().await.unwrap();
            for sql in [
                "UPDATE locks SET holds = holds - 1 WHERE resource = $1 AND owner = $2 AND token = $3 AND holds > 1",
                "DELETE FROM locks WHERE resource = $1 AND owner = $2 AND token = $3",
            ] {
                sqlx::query(sql).bind(resource).bind(&owner.id).bind(token).execute(&mut *tx).await.unwrap();
            }
            tx.commit().await.unwrap();
        }
        Backend::Postgres => {
            let token: i64 = query.fetch_one(&db.pool).await.unwrap().get(0);
            sqlx::query(
                "WITH gone AS (DELETE FROM locks WHERE resource = $1 AND owner = $2 AND token = $3 AND holds <= 1 RETURNING 1)
                 UPDATE locks SET holds = holds - 1 WHERE resource = $1 AND owner = $2 AND token = $3 AND holds > 1",
            )
            .bind(resource)
            .bind(&owner.id)
            .bind(token)
            .execute(&db.pool)
            .await
            .unwrap();
        }
    }
}
