#![allow(missing_docs)] // criterion_group! generates undocumented items
//! Lock acquire+release through the `LockService`, beside the same SQL
//! statements issued directly through sqlx, on SQLite and (when reachable)
//! PostgreSQL.

use std::time::Duration;

#[path = "support/raw_locks.rs"]
mod raw_locks;

use criterion::{criterion_group, criterion_main, Criterion};
use lockstep::db::Db;
use lockstep::locks::{LockService, Owner};

const TTL: Duration = Duration::from_secs(60);

fn bench_backend(c: &mut Criterion, name: &str, url: &str) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let db = match rt.block_on(Db::connect(url)) {
        Ok(db) => db,
        Err(e) => {
            eprintln!("skipping {name} lock benchmarks: {e}");
            return;
        }
    };
    let raw = rt.block_on(raw_locks::raw_pool(url, db.backend));
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
        b.to_async(&rt)
            .iter(|| raw_locks::acquire_release(&raw, &owner, "bench:raw"))
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
