//! The lock service on a real database, both backends: conflicts name the
//! holder, re-entrancy, expiry from the database clock, takeover with a
//! higher token, fencing, force-release, renewal and waiting.

use std::time::Duration;

use lockstep::db::Db;
use lockstep::locks::{LockError, LockService, Owner, MIN_TTL};
use lockstep_tests::{on_both_backends, poll, Backend, TestDb};

async fn service(backend: Backend) -> (TestDb, LockService) {
    let db = TestDb::new(backend).await;
    let service = LockService::new(Db::connect(&db.url).await.unwrap());
    (db, service)
}

async fn conflict_names_the_holder(backend: Backend) {
    let (_db, locks) = service(backend).await;
    let (a, b) = (Owner::new_session(), Owner::new_session());
    let grant = locks
        .try_acquire("plan:p1", &a, "execute plan p1", MIN_TTL)
        .await
        .unwrap();
    assert_eq!(grant.holds, 1);
    match locks
        .try_acquire("plan:p1", &b, "execute plan p1", MIN_TTL)
        .await
    {
        Err(LockError::Conflict(c)) => {
            assert_eq!(c.owner, a.id);
            assert_eq!(c.operation, "execute plan p1");
            assert_eq!(c.holder, a.holder);
            assert!(c.expires_at > c.acquired_at);
            assert!(c.expires_at - c.acquired_at >= MIN_TTL.as_millis() as i64 - 5);
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    // Terraform's contract: A unlocks, then B succeeds.
    locks.release("plan:p1", &a, grant.token).await.unwrap();
    let b_grant = locks
        .try_acquire("plan:p1", &b, "execute plan p1", MIN_TTL)
        .await
        .unwrap();
    assert!(b_grant.token > grant.token);
}

async fn reentrant_holds_are_counted(backend: Backend) {
    let (_db, locks) = service(backend).await;
    let a = Owner::new_session();
    let outer = locks
        .try_acquire("project:x", &a, "apply", MIN_TTL)
        .await
        .unwrap();
    let inner = locks
        .try_acquire("project:x", &a, "apply again", MIN_TTL)
        .await
        .unwrap();
    assert_eq!(
        inner.token, outer.token,
        "re-entrant acquisition keeps the token"
    );
    assert_eq!(inner.holds, 2);
    locks.release("project:x", &a, inner.token).await.unwrap();
    let listed = locks.list().await.unwrap();
    assert_eq!(
        listed.len(),
        1,
        "releasing the inner hold keeps the outer one"
    );
    assert_eq!(listed[0].holds, 1);
    assert_eq!(listed[0].operation, "apply", "the outer operation is kept");
    locks.release("project:x", &a, outer.token).await.unwrap();
    assert!(locks.list().await.unwrap().is_empty());
}

async fn expired_leases_are_taken_over_and_fenced(backend: Backend) {
    let (_db, locks) = service(backend).await;
    let (a, b) = (Owner::new_session(), Owner::new_session());
    let old = locks
        .try_acquire("plan:p2", &a, "execute", MIN_TTL)
        .await
        .unwrap();
    assert!(locks.is_current("plan:p2", &a, old.token).await.unwrap());
    assert!(
        !locks.list().await.unwrap()[0].stale,
        "a live lease is not stale"
    );
    // The lease runs out on the database's clock; until then B is refused.
    poll::until(
        "the lease is listed as stale",
        MIN_TTL + Duration::from_secs(5),
        || async { locks.list().await.unwrap()[0].stale },
    )
    .await;
    let new = locks
        .try_acquire("plan:p2", &b, "execute", MIN_TTL)
        .await
        .unwrap();
    assert!(
        new.token > old.token,
        "a takeover gets a higher fencing token"
    );
    assert!(!locks.is_current("plan:p2", &a, old.token).await.unwrap());
    assert!(matches!(
        locks.renew("plan:p2", &a, old.token, MIN_TTL).await,
        Err(LockError::Expired { .. })
    ));
    // The old holder's release must not release the new holder's lease.
    locks.release("plan:p2", &a, old.token).await.unwrap();
    assert!(locks.is_current("plan:p2", &b, new.token).await.unwrap());
}

async fn force_release_fences_the_holder(backend: Backend) {
    let (_db, locks) = service(backend).await;
    let (a, b) = (Owner::new_session(), Owner::new_session());
    let held = locks
        .try_acquire("plan:p3", &a, "apply", MIN_TTL)
        .await
        .unwrap();
    assert_eq!(
        locks.force_release("plan:p3").await.unwrap(),
        Some((a.id.clone(), held.token))
    );
    assert!(!locks.is_current("plan:p3", &a, held.token).await.unwrap());
    let next = locks
        .try_acquire("plan:p3", &b, "apply", MIN_TTL)
        .await
        .unwrap();
    assert!(
        next.token > held.token + 1,
        "force-release advanced the token counter"
    );
    assert_eq!(locks.force_release("plan:none").await.unwrap(), None);
}

async fn release_all_for_owner_and_waiting(backend: Backend) {
    let (_db, locks) = service(backend).await;
    let (a, b) = (Owner::new_session(), Owner::new_session());
    for r in ["r:1", "r:2", "r:3"] {
        locks.try_acquire(r, &a, "hold", MIN_TTL).await.unwrap();
    }
    let other = locks.try_acquire("r:4", &b, "hold", MIN_TTL).await.unwrap();
    // B waits for r:1 while A still holds it, and gets it once A lets go.
    let mut waiter = {
        let locks = locks.clone();
        let b = b.clone();
        tokio::spawn(async move {
            locks
                .acquire("r:1", &b, "wait", MIN_TTL, Duration::from_secs(10))
                .await
        })
    };
    // While A holds r:1 the waiter does not finish.
    assert!(
        tokio::time::timeout(Duration::from_millis(300), &mut waiter)
            .await
            .is_err(),
        "the waiter got r:1 while A held it"
    );
    assert_eq!(locks.release_all_for_owner(&a.id).await.unwrap(), 3);
    waiter
        .await
        .unwrap()
        .expect("the waiter gets the lock after release");
    // A bounded wait that runs out reports the holder.
    match locks
        .acquire("r:4", &a, "wait", MIN_TTL, Duration::from_millis(200))
        .await
    {
        Err(LockError::Timeout { conflict, .. }) => assert_eq!(conflict.owner, b.id),
        other => panic!("expected a timeout, got {other:?}"),
    }
    locks.release("r:4", &b, other.token).await.unwrap();
}

async fn guard_renews_and_detects_loss(backend: Backend) {
    let (_db, locks) = service(backend).await;
    let a = Owner::new_session();
    let guard = locks
        .lock("plan:g", &a, "execute", MIN_TTL, Duration::ZERO)
        .await
        .unwrap();
    // The heartbeat renews it (every TTL/3) past the first expiry.
    let first_expiry = locks.list().await.unwrap()[0].expires_at;
    let ttl = MIN_TTL.as_millis() as i64;
    poll::until(
        "the heartbeat renewed the lease past its first expiry",
        MIN_TTL * 2,
        || async { locks.list().await.unwrap()[0].expires_at > first_expiry + ttl / 6 },
    )
    .await;
    assert!(locks.is_current("plan:g", &a, guard.token()).await.unwrap());
    assert!(!guard.lost().is_cancelled());
    // An operator force-releases it: the heartbeat notices within TTL/3.
    locks.force_release("plan:g").await.unwrap();
    tokio::time::timeout(MIN_TTL, guard.lost().cancelled())
        .await
        .expect("loss detected by the heartbeat");
    drop(guard);
}

async fn dropped_guard_releases(backend: Backend) {
    let (_db, locks) = service(backend).await;
    let a = Owner::new_session();
    let guard = locks
        .lock("plan:d", &a, "execute", MIN_TTL, Duration::ZERO)
        .await
        .unwrap();
    let nested = locks
        .lock("plan:d", &a, "nested", MIN_TTL, Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(locks.list().await.unwrap()[0].holds, 2);
    drop(nested);
    poll::until(
        "dropping the nested guard released its hold",
        Duration::from_secs(5),
        || async { locks.list().await.unwrap()[0].holds == 1 },
    )
    .await;
    assert_eq!(
        locks.list().await.unwrap().len(),
        1,
        "dropping the nested guard keeps the outer hold"
    );
    drop(guard);
    poll::until(
        "dropping the guard released the lock",
        Duration::from_secs(5),
        || async { locks.list().await.unwrap().is_empty() },
    )
    .await;
}

on_both_backends!(
    conflict_names_the_holder,
    reentrant_holds_are_counted,
    expired_leases_are_taken_over_and_fenced,
    force_release_fences_the_holder,
    release_all_for_owner_and_waiting,
    guard_renews_and_detects_loss,
    dropped_guard_releases,
);
