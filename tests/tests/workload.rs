//! The contended-lock workload, reduced for CI (4 processes × 32 tasks, 1 s
//! leases, one worker SIGSTOPped past its TTL): the checker finds no double
//! holder, no accepted stale write, and counters equal to accepted writes.
//! `just test-full` runs it at full size (5 s leases, 60 s).

use std::process::Command;

use lockstep_tests::process::workspace_bin;
use lockstep_tests::{on_both_backends, Backend, TestDb};

fn run_workload(db: &TestDb, ttl: &str, duration: &str) -> serde_json::Value {
    let history = db.dir.path().join("history");
    let out = Command::new(workspace_bin("lock-workload"))
        .args(["run", "--database-url", &db.url, "--history"])
        .arg(&history)
        .args([
            "--workers",
            "4",
            "--tasks",
            "32",
            "--resources",
            "3",
            "--pause",
            "0",
        ])
        .args(["--ttl", ttl, "--duration", duration])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the checker found violations or a worker failed:\n{stderr}"
    );
    eprintln!("{stderr}");
    serde_json::from_slice(&out.stdout).unwrap()
}

async fn contended_locks_reduced(backend: Backend) {
    let db = TestDb::new(backend).await;
    let report = run_workload(&db, "1s", "6s");
    assert_eq!(report["violations"], serde_json::json!([]));
    assert!(report["grants"].as_u64().unwrap() > 5, "{report}");
    // The fence lets current holders write: a fence that refused every
    // write would pass every other check here.
    assert!(report["writes_accepted"].as_u64().unwrap() > 0, "{report}");
    assert!(report["conflicts"].as_u64().unwrap() > 0, "{report}");
    assert!(report["takeovers"].as_u64().unwrap() > 0, "{report}");
    assert!(
        report["stale_writes_rejected"].as_u64().unwrap() > 0,
        "{report}"
    );
}

async fn contended_locks_full(backend: Backend) {
    let db = TestDb::new(backend).await;
    let report = run_workload(&db, "5s", "60s");
    assert_eq!(report["violations"], serde_json::json!([]));
    assert!(report["writes_accepted"].as_u64().unwrap() > 0, "{report}");
    assert!(
        report["stale_writes_rejected"].as_u64().unwrap() > 0,
        "{report}"
    );
}

mod reduced {
    use super::*;
    on_both_backends!(contended_locks_reduced);
}

mod full {
    mod sqlite {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        #[ignore = "full size: run with `just test-full`"]
        async fn contended_locks_full() {
            super::super::contended_locks_full(lockstep_tests::Backend::Sqlite).await
        }
    }
    mod postgres {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        #[ignore = "full size: run with `just test-full`"]
        async fn contended_locks_full() {
            super::super::contended_locks_full(lockstep_tests::Backend::Postgres).await
        }
    }
}
