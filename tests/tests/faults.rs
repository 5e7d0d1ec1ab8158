//! Database faults while a phase runs under a lock: PostgreSQL connections
//! killed with `pg_terminate_backend`, and a SQLite file held by another
//! writer for longer than `busy_timeout`. The phase carries on after
//! reconnecting or fails cleanly; no lease is assumed that the database does
//! not agree on; nothing is lost.

use std::sync::Arc;
use std::time::Duration;

use lockstep::lifecycle::LifecycleError;
use lockstep::model::{Phase, State, Status};
use lockstep::{Config, Container};
use lockstep_tests::fixtures::{action, strategized};
use lockstep_tests::{Backend, TestDb, TestPlugins};
use sqlx::{Connection, Executor};

async fn container(db: &TestDb) -> Container {
    let mut config = Config::for_project(db.dir.path());
    config.database_url = Some(db.url.clone());
    config.lifecycle.lock_ttl = lockstep::locks::MIN_TTL;
    Container::build_with_plugins(config, Arc::new(TestPlugins))
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_connections_killed_mid_phase() {
    let db = TestDb::new(Backend::Postgres).await;
    let project = db.project("p", &[]);
    let c = container(&db).await;
    let s = c.lifecycle();
    let plan = strategized(
        &s,
        action("slow", "slow", &[("steps", "2"), ("ms", "2500")]),
        &project,
    )
    .await;
    let id = plan.id.clone();
    let running = tokio::spawn(async move { s.execute_plan(&id).await });
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(1200)).await;
        eprintln!("terminated {} backend(s)", terminate_backends(&db).await);
    }
    // The pool replaces the dead connections; renewals and the final write go through.
    let plan = running
        .await
        .unwrap()
        .expect("the phase carries on after reconnecting");
    assert_eq!(plan.status, Status::new(Phase::Execute, State::Complete));
    assert_eq!(
        c.store().changes(&plan.id).await.unwrap().len(),
        2,
        "nothing lost"
    );
    assert!(c.locks().list().await.unwrap().is_empty());
}

/// Terminate every backend of `db`'s database but the caller's; how many.
async fn terminate_backends(db: &TestDb) -> usize {
    let name = db.url.rsplit('/').next().unwrap().to_string();
    let mut admin = sqlx::PgConnection::connect(&lockstep_tests::db::postgres_admin_url())
        .await
        .unwrap();
    let killed: Vec<(bool,)> = sqlx::query_as(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
    )
    .bind(&name)
    .fetch_all(&mut admin)
    .await
    .unwrap();
    killed.len()
}

/// Write connections are given back without a round trip, so one the
/// server ended between two uses less than a second apart is only found
/// out by the next statement on it. That statement may fail; the
/// connection must then be closed, not given back: later statements get a
/// new one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_connection_the_server_ended_fails_one_statement_at_most() {
    let db = TestDb::new(Backend::Postgres).await;
    let c = container(&db).await;
    let locks = c.locks();
    let owner = lockstep::locks::Owner::new_session();
    let ttl = Duration::from_secs(30);
    let g = locks
        .try_acquire("kept:warm", &owner, "t", ttl)
        .await
        .unwrap();
    locks.release("kept:warm", &owner, g.token).await.unwrap();
    assert!(terminate_backends(&db).await >= 1);
    let mut failed = Vec::new();
    for i in 0..6 {
        let resource = format!("kept:{i}");
        match locks.try_acquire(&resource, &owner, "t", ttl).await {
            Ok(g) => locks.release(&resource, &owner, g.token).await.unwrap(),
            Err(e) => failed.push(e.to_string()),
        }
    }
    assert!(
        failed.len() <= 1,
        "a dead connection was reused: {failed:?}"
    );
    // Reads use the pool, which pings connections idle for a second.
    tokio::time::sleep(lockstep::db::PG_PING_IDLE + Duration::from_millis(200)).await;
    assert!(locks.list().await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_file_locked_longer_than_busy_timeout() {
    let db = TestDb::new(Backend::Sqlite).await;
    let project = db.project("p", &[("a.txt", "a")]);
    let c = container(&db).await;
    let s = c.lifecycle();
    // The step outlasts the lease, so the phase is still running when the
    // host gives up on renewing it.
    let plan = strategized(
        &s,
        action("slow", "slow", &[("steps", "1"), ("ms", "8000")]),
        &project,
    )
    .await;
    let id = plan.id.clone();
    let running = tokio::spawn(async move {
        let r = s.execute_plan(&id).await;
        (s, r)
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    // Another writer takes the database's write lock and sits on it for
    // longer than busy_timeout (5 s) plus the lease (5 s).
    let path = db.url.trim_start_matches("sqlite://").to_string();
    let mut blocker = sqlx::SqliteConnection::connect(&format!("sqlite://{path}"))
        .await
        .unwrap();
    blocker.execute("BEGIN IMMEDIATE").await.unwrap();
    let held =
        lockstep::db::SQLITE_BUSY_TIMEOUT + lockstep::locks::MIN_TTL + Duration::from_secs(1);
    let (s, result) = tokio::time::timeout(held + Duration::from_secs(30), async {
        tokio::time::sleep(held).await;
        blocker.execute("ROLLBACK").await.unwrap();
        running.await.unwrap()
    })
    .await
    .expect("the phase neither hangs nor crashes");
    // Renewals could not reach the database for longer than the lease: the
    // host stopped trusting the lease and failed the phase.
    match result {
        Err(LifecycleError::LockExpired { resource, .. }) => {
            assert_eq!(resource, format!("plan:{}", plan.id))
        }
        other => panic!("expected the lease on the plan to be lost, got {other:?}"),
    }
    // Nothing is half-done: the project is untouched and the plan can be
    // recovered and finished.
    assert_eq!(std::fs::read_to_string(project.join("a.txt")).unwrap(), "a");
    tokio::time::sleep(lockstep::locks::MIN_TTL).await;
    let view = s.status(&plan.id).await.unwrap();
    assert_eq!(
        view.plan.status,
        Status::new(Phase::Execute, State::Errored),
        "{:?}",
        view.plan
    );
    let done = s.retry(&plan.id).await.unwrap();
    assert_eq!(done.status, Status::new(Phase::Execute, State::Complete));
}

/// The PostgreSQL server restarts while a phase runs. Run alone (it stops
/// the shared server for a moment): `just test-full` does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "restarts the PostgreSQL server: run alone with `just test-full`"]
async fn postgres_server_restarted_mid_phase() {
    let db = TestDb::new(Backend::Postgres).await;
    let project = db.project("p", &[]);
    let c = container(&db).await;
    let s = c.lifecycle();
    let plan = strategized(
        &s,
        action("slow", "slow", &[("steps", "1"), ("ms", "4000")]),
        &project,
    )
    .await;
    let id = plan.id.clone();
    let running = tokio::spawn(async move {
        let r = s.execute_plan(&id).await;
        (s, r)
    });
    tokio::time::sleep(Duration::from_millis(800)).await;
    let version = std::fs::read_dir("/etc/postgresql")
        .unwrap()
        .flatten()
        .next()
        .unwrap()
        .file_name();
    let status = std::process::Command::new("pg_ctlcluster")
        .args([
            "--skip-systemctl-redirect",
            &version.to_string_lossy(),
            "main",
            "restart",
        ])
        .status()
        .unwrap();
    assert!(status.success(), "pg_ctlcluster restart");
    let (s, result) = running.await.unwrap();
    // Either the phase carried on after reconnecting, or it failed cleanly;
    // in both cases the plan is never stuck and nothing is lost.
    match result {
        Ok(plan) => assert_eq!(plan.status, Status::new(Phase::Execute, State::Complete)),
        Err(e) => {
            eprintln!("phase failed cleanly: {e}");
            tokio::time::sleep(lockstep::locks::MIN_TTL).await;
            let view = s.status(&plan.id).await.unwrap();
            assert_eq!(
                view.plan.status,
                Status::new(Phase::Execute, State::Errored)
            );
            s.retry(&plan.id).await.unwrap();
        }
    }
    assert_eq!(c.store().changes(&plan.id).await.unwrap().len(), 1);
}
