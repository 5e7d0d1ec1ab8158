//! The statements `LockService` issues for one acquire + release, written
//! out by hand and sent straight through sqlx: the baseline the lock
//! benchmarks compare against.

use lockstep::db::Backend;
use lockstep::locks::Owner;
use sqlx::Row;

/// Lease length used by the baselines, in milliseconds.
const TTL_MS: i64 = 60_000;

/// Acquire and release `resource` for `owner` with raw SQL.
pub async fn acquire_release(db: &Raw, owner: &Owner, resource: &str) {
    let n = db.backend.now_ms();
    let token = match db.backend {
        Backend::Sqlite => "(SELECT value + 1 FROM lock_counter WHERE id = 1)",
        Backend::Postgres => "nextval('lock_token_seq')",
    };
    let acquire = format!(
        "INSERT INTO locks (resource, owner, token, operation, holder_host, holder_pid, holder_user, holds, acquired_at, expires_at)
         VALUES ($1, $2, {token}, $3, $4, $5, $6, 1, {n}, {n} + $7)
         ON CONFLICT (resource) DO UPDATE SET token = excluded.token, holds = 1, owner = excluded.owner
         WHERE locks.owner = excluded.owner OR locks.expires_at <= excluded.acquired_at
         RETURNING token"
    );
    let token: i64 = sqlx::query(&acquire)
        .bind(resource)
        .bind(&owner.id)
        .bind("bench")
        .bind(&owner.holder.host)
        .bind(owner.holder.pid)
        .bind(&owner.holder.user)
        .bind(TTL_MS)
        .fetch_one(&db.pool)
        .await
        .unwrap()
        .get(0);
    let release = match db.backend {
        Backend::Sqlite => {
            "UPDATE locks SET holds = holds - 1 WHERE resource = $1 AND owner = $2 AND token = $3"
        }
        Backend::Postgres => {
            "WITH gone AS (DELETE FROM locks WHERE resource = $1 AND owner = $2 AND token = $3 AND holds <= 1 RETURNING 1),
                  down AS (UPDATE locks SET holds = holds - 1 WHERE resource = $1 AND owner = $2 AND token = $3 AND holds > 1 RETURNING 1)
             SELECT set_config('synchronous_commit', 'off', true)"
        }
    };
    sqlx::query(release)
        .bind(resource)
        .bind(&owner.id)
        .bind(token)
        .execute(&db.pool)
        .await
        .unwrap();
}

/// A pool of the benchmark's own on lockstep's database.
pub struct Raw {
    /// The pool.
    pub pool: sqlx::AnyPool,
    /// Its backend.
    pub backend: Backend,
}

/// A pool of the benchmark's own on lockstep's database, configured as
/// lockstep configures its connections (the SQLite pragmas), for baselines
/// that send SQL directly.
pub async fn raw_pool(url: &str, backend: Backend) -> Raw {
    use sqlx::Executor;
    // lockstep created the database: the URL opens it as it is.
    let pool = sqlx::any::AnyPoolOptions::new()
        .max_connections(4)
        .after_connect(move |conn, _| {
            Box::pin(async move {
                if backend == Backend::Sqlite {
                    conn.execute(lockstep::db::sqlite_pragmas().as_str())
                        .await?;
                }
                Ok(())
            })
        })
        .connect(url)
        .await
        .expect("raw pool");
    Raw { pool, backend }
}

/// The PostgreSQL acquire and release above as a `pgbench` script (one
/// "transaction" of pgbench is both statements, each committing on its own),
/// with the clock expression `now` written in as `acquire_release` writes it: the floor
/// the compare bench measures our client path against.
#[allow(dead_code)] // the compare bench's only
pub fn pgbench_script(now: &str) -> String {
    let resource = "'cmp-pgbench' AND owner = 'pgbench' AND token = :token";
    format!(
        "INSERT INTO locks (resource, owner, token, operation, holder_host, holder_pid, holder_user, holds, acquired_at, expires_at) \
         VALUES ('cmp-pgbench', 'pgbench', nextval('lock_token_seq'), 'bench', 'bench-host', 1, 'bench', 1, {now}, {now} + {TTL_MS}) \
         ON CONFLICT (resource) DO UPDATE SET token = excluded.token, holds = 1, owner = excluded.owner \
         WHERE locks.owner = excluded.owner OR locks.expires_at <= excluded.acquired_at \
         RETURNING token \\gset\n\
         WITH gone AS (DELETE FROM locks WHERE resource = {resource} AND holds <= 1 RETURNING 1), \
         down AS (UPDATE locks SET holds = holds - 1 WHERE resource = {resource} AND holds > 1 RETURNING 1) \
         SELECT set_config('synchronous_commit', 'off', true);\n"
    )
}
