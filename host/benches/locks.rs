#![allow(missing_docs)] // criterion_group! generates undocumented items
//! Lock acquire+release through the `LockService`, beside the same SQL
//! statements issued directly through sqlx, on SQLite and (when reachable)
//! PostgreSQL.

use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use lockstep::locks::{LockService, Owner};
use lockstep::store::{Backend, Db};

const TTL: Duration = Duration::from_secs(60);

fn now(db: &Db) -> &'static str {
    db.now_ms()
}

/// The statements `LockService` issues, written out by hand.
async fn raw_acquire_release(db: &Db, owner: &Owner) {
    let n = now(db);
    let token_sql = match db.backend {
        Backend::Sqlite => "$8",
        Backend::Postgres => "nextval('lock_token_seq')",
    };
    let acquire = format!(
        "INSERT INTO locks (resource, owner, token, operation, holder_host, holder_pid, holder_user, holds, acquired_at, expires_at)
         VALUES ($1, $2, {token_sql}, $3, $4, $5, $6, 1, {n}, {n} + $7)
         ON CONFLICT (resource) DO UPDATE SET token = excluded.token, holds = 1, owner = excluded.owner
         WHERE locks.owner = excluded.owner OR locks.expires_at <= excluded.acquired_at
         RETURNING token, holds, acquired_at, expires_at"
    );
    let mut tx = db.begin_write().await.unwrap();
    let mut q = sqlx::query(&acquire)
        .bind("bench:raw")
        .bind(&owner.id)
        .bind("bench")
        .bind(&owner.holder.host)
        .bind(owner.holder.pid)
        .bind(&owner.holder.user)
        .bind(TTL.as_millis() as i64);
    if db.backend == Backend::Sqlite {
        let t: i64 = sqlx::query_scalar(
            "UPDATE lock_counter SET value = value + 1 WHERE id = 1 RETURNING value",
        )
        .fetch_one(&mut *tx)
        .await
        .unwrap();
        q = q.bind(t);
    }
    let row = q.fetch_one(&mut *tx).await.unwrap();
    tx.commit().await.unwrap();
    let token: i64 = sqlx::Row::get(&row, 0);
    let mut tx = db.begin_write().await.unwrap();
    sqlx::query("UPDATE locks SET holds = holds - 1 WHERE resource = $1 AND owner = $2 AND token = $3 AND holds > 1")
        .bind("bench:raw")
        .bind(&owner.id)
        .bind(token)
        .execute(&mut *tx)
        .await
        .unwrap();
    sqlx::query("DELETE FROM locks WHERE resource = $1 AND owner = $2 AND token = $3")
        .bind("bench:raw")
        .bind(&owner.id)
        .bind(token)
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
}

fn bench_backend(c: &mut Criterion, name: &str, url: &str) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let db = match rt.block_on(Db::connect(url)) {
        Ok(db) => db,
        Err(e) => {
            eprintln!("skipping {name} lock benchmarks: {e}");
            return;
        }
    };
    let service = LockService::new(db.clone());
    let owner = Owner::new_session();
    let mut group = c.benchmark_group(format!("lock_acquire_release/{name}"));
    group.bench_function("lockstep", |b| {
        b.to_async(&rt).iter(|| async {
            let g = service
                .try_acquire("bench:svc", &owner, "bench", TTL)
                .await
                .unwrap();
            service.release("bench:svc", &owner, g.token).await.unwrap();
        })
    });
    group.bench_function("raw_sqlx", |b| {
        b.to_async(&rt).iter(|| raw_acquire_release(&db, &owner))
    });
    group.finish();
}

fn locks(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    bench_backend(
        c,
        "sqlite",
        &format!("sqlite://{}", dir.path().join("bench.db").display()),
    );
    let pg = std::env::var("LOCKSTEP_BENCH_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    bench_backend(c, "postgres", &pg);
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).measurement_time(Duration::from_secs(4));
    targets = locks
}
criterion_main!(benches);
