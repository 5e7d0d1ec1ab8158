//! Two applies never write one project tree at once, both backends: the
//! apply lock is a tree lock, exclusive per acquisition (even within one
//! session) and over nesting (an apply on `/repo` excludes one on
//! `/repo/sub`, and the other way round), while siblings apply in parallel
//! and an expired tree lock blocks nothing.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use lockstep::db::Db;
use lockstep::lifecycle::LifecycleError;
use lockstep::locks::{LockError, LockGuard, LockService, Owner, MIN_TTL};
use lockstep::model::PlanRecord;
use lockstep::model::{Phase, State};
use lockstep::{Config, Container, PlanLifecycleService};
use lockstep_tests::db::RawDb;
use lockstep_tests::fixtures::{action, strategized};
use lockstep_tests::{on_both_backends, Backend, TestDb, TestPlugins};

async fn container(db: &TestDb) -> Container {
    let mut config = Config::for_project(db.dir.path());
    config.database_url = Some(db.url.clone());
    Container::build_with_plugins(config, Arc::new(TestPlugins))
        .await
        .unwrap()
}

/// A plan on `project` that appends a line to `a.txt`, executed and ready
/// to apply.
async fn executed(s: &PlanLifecycleService, project: &Path) -> PlanRecord {
    let act = action(
        "files",
        "files",
        &[("files", "a.txt"), ("content", "+x\n"), ("mode", "append")],
    );
    let plan = strategized(s, act, project).await;
    s.execute_plan(&plan.id).await.unwrap()
}

/// The apply lock `plan`'s apply takes, held by `owner` (as an apply in
/// progress holds it).
async fn hold_apply_lock(locks: &LockService, owner: &Owner, plan: &PlanRecord) -> LockGuard {
    locks
        .lock_tree(
            &format!("project:{}", plan.project_id),
            &plan.project_root,
            owner,
            &format!("apply plan {} in {}", plan.id, plan.project_root),
            MIN_TTL,
            Duration::ZERO,
        )
        .await
        .unwrap()
}

fn assert_conflict_with(result: Result<impl std::fmt::Debug, LifecycleError>, holder: &Owner) {
    match result {
        Err(LifecycleError::LockConflict(c)) => {
            assert_eq!(c.owner, holder.id, "the conflict names the holder");
            assert!(c.operation.starts_with("apply plan"), "{}", c.operation);
        }
        other => panic!("expected a lock conflict, got {other:?}"),
    }
}

async fn two_applies_in_one_session_do_not_write_one_project_at_once(backend: Backend) {
    let db = TestDb::new(backend).await;
    let project = db.project("p", &[("a.txt", "A\n")]);
    let c = container(&db).await;
    let s = c.lifecycle();
    let first = executed(&s, &project).await;
    let second = executed(&s, &project).await;
    // The first apply of this session is writing the project...
    let writing = hold_apply_lock(c.locks(), s.owner(), &first).await;
    // ...so the second apply of the same session must not start.
    assert_conflict_with(s.apply_plan(&second.id).await, s.owner());
    assert_eq!(
        std::fs::read_to_string(project.join("a.txt")).unwrap(),
        "A\n",
        "nothing written"
    );
    let plan = s.status(&second.id).await.unwrap().plan;
    assert_eq!(
        (plan.status.phase, plan.status.state),
        (Phase::Execute, State::Complete),
        "the refused plan can still be applied"
    );
    // A tree lock is never re-entrant, not even for its own owner.
    let again = c
        .locks()
        .try_acquire_tree(
            &format!("project:{}", first.project_id),
            &first.project_root,
            s.owner(),
            "apply again",
            MIN_TTL,
        )
        .await;
    assert!(matches!(again, Err(LockError::Conflict(_))), "{again:?}");
    writing.release().await.unwrap();
    s.apply_plan(&second.id).await.unwrap();
    assert_eq!(
        std::fs::read_to_string(project.join("a.txt")).unwrap(),
        "A\n+x\n"
    );
    assert!(
        c.locks().list().await.unwrap().is_empty(),
        "every lock released"
    );
}

async fn applies_on_nested_projects_exclude_each_other(backend: Backend) {
    let db = TestDb::new(backend).await;
    let outer = db.project("repo", &[("a.txt", "outer\n"), ("sub/a.txt", "inner\n")]);
    let inner = outer.join("sub");
    let c = container(&db).await;
    let (s, other) = (c.lifecycle(), c.lifecycle());
    let outer_plan = executed(&s, &outer).await;
    let inner_plan = executed(&s, &inner).await;
    assert_ne!(outer_plan.project_id, inner_plan.project_id);

    // An apply on the outer project excludes one on the nested project...
    let held = hold_apply_lock(c.locks(), other.owner(), &outer_plan).await;
    assert_conflict_with(s.apply_plan(&inner_plan.id).await, other.owner());
    held.release().await.unwrap();
    // ...and one on the nested project excludes one on the outer project.
    let held = hold_apply_lock(c.locks(), other.owner(), &inner_plan).await;
    assert_conflict_with(s.apply_plan(&outer_plan.id).await, other.owner());
    held.release().await.unwrap();
    assert_eq!(
        std::fs::read_to_string(outer.join("a.txt")).unwrap(),
        "outer\n"
    );
    assert_eq!(
        std::fs::read_to_string(inner.join("a.txt")).unwrap(),
        "inner\n"
    );

    // The same on the lock service, whichever is taken first.
    let locks = c.locks();
    let (a, b) = (Owner::new_session(), Owner::new_session());
    for (first, second) in [
        ("/srv/repo", "/srv/repo/sub/deeper"),
        ("/srv/repo/sub", "/srv/repo"),
    ] {
        let g = locks
            .try_acquire_tree("project:first", first, &a, "apply first", MIN_TTL)
            .await
            .unwrap();
        match locks
            .try_acquire_tree("project:second", second, &b, "apply second", MIN_TTL)
            .await
        {
            Err(LockError::Conflict(conflict)) => {
                assert_eq!(conflict.resource, "project:first");
                assert_eq!(conflict.owner, a.id);
                assert_eq!(conflict.holder, a.holder);
                assert_eq!(conflict.operation, "apply first");
            }
            other => panic!("{first} held, {second}: expected a conflict, got {other:?}"),
        }
        locks.release("project:first", &a, g.token).await.unwrap();
    }
    // Once released, both applies run.
    s.apply_plan(&inner_plan.id).await.unwrap();
    s.apply_plan(&outer_plan.id).await.unwrap();
}

/// A run of phases takes apply's tree lock in the transaction its
/// hand-over into apply commits (on PostgreSQL after the advisory locks):
/// a nested tree held refuses it, and the phase that ran ends as usual.
async fn a_run_into_apply_respects_nested_tree_locks(backend: Backend) {
    let db = TestDb::new(backend).await;
    let outer = db.project("repo", &[("a.txt", "outer\n"), ("sub/a.txt", "inner\n")]);
    let inner = outer.join("sub");
    let c = container(&db).await;
    let (s, other) = (c.lifecycle(), c.lifecycle());
    let act = || {
        action(
            "files",
            "files",
            &[("files", "a.txt"), ("content", "+x\n"), ("mode", "append")],
        )
    };
    let outer_plan = strategized(&s, act(), &outer).await;
    let inner_plan = strategized(&s, act(), &inner).await;
    for (held, runs, path) in [
        (&outer_plan, &inner_plan, inner.join("a.txt")),
        (&inner_plan, &outer_plan, outer.join("a.txt")),
    ] {
        let lock = hold_apply_lock(c.locks(), other.owner(), held).await;
        let ran = s.run_through(&runs.id, Phase::Execute, Phase::Apply).await;
        assert_conflict_with(ran, other.owner());
        let plan = s.status(&runs.id).await.unwrap().plan;
        assert_eq!(
            (plan.status.phase, plan.status.state),
            (Phase::Execute, State::Complete),
            "execute ran and ended; apply did not start"
        );
        assert!(!std::fs::read_to_string(&path).unwrap().contains("+x"));
        lock.release().await.unwrap();
    }
    // Free again: both apply, each in a run of its own.
    for plan in [&inner_plan, &outer_plan] {
        let done = s.run_through(&plan.id, Phase::Apply, Phase::Apply).await;
        assert_eq!(done.unwrap().status.state, State::Applied);
    }
    assert!(
        c.locks().list().await.unwrap().is_empty(),
        "every lock released"
    );
}

async fn sibling_projects_apply_in_parallel(backend: Backend) {
    let db = TestDb::new(backend).await;
    let root = db.project(
        "mono",
        &[("a/a.txt", "a\n"), ("ab/a.txt", "ab\n"), ("b/a.txt", "b\n")],
    );
    let c = container(&db).await;
    let (s, other) = (c.lifecycle(), c.lifecycle());
    let a = executed(&s, &root.join("a")).await;
    let ab = executed(&s, &root.join("ab")).await;
    let b = executed(&s, &root.join("b")).await;
    // While `mono/a` is being applied, its siblings `mono/b` and `mono/ab`
    // (a longer name with the same prefix) apply.
    let held = hold_apply_lock(c.locks(), other.owner(), &a).await;
    s.apply_plan(&b.id).await.unwrap();
    s.apply_plan(&ab.id).await.unwrap();
    assert_eq!(
        std::fs::read_to_string(root.join("b/a.txt")).unwrap(),
        "b\n+x\n"
    );
    assert_eq!(
        std::fs::read_to_string(root.join("ab/a.txt")).unwrap(),
        "ab\n+x\n"
    );
    // Two sibling tree locks held at the same time, in both orders.
    let locks = c.locks();
    let owner = Owner::new_session();
    let g1 = locks
        .try_acquire_tree("project:one", "/srv/one", &owner, "apply one", MIN_TTL)
        .await
        .unwrap();
    let g2 = locks
        .try_acquire_tree("project:two", "/srv/one-two", &owner, "apply two", MIN_TTL)
        .await
        .unwrap();
    assert!(g2.token > g1.token);
    held.release().await.unwrap();
    s.apply_plan(&a.id).await.unwrap();
}

async fn an_expired_tree_lock_does_not_block(backend: Backend) {
    let db = TestDb::new(backend).await;
    let short = Duration::from_millis(200);
    let locks = LockService::with_min_ttl(Db::connect(&db.url).await.unwrap(), short);
    let (a, b) = (Owner::new_session(), Owner::new_session());
    // A holds /srv/repo and stops renewing (a crashed apply).
    let dead = locks
        .try_acquire_tree("project:repo", "/srv/repo", &a, "apply plan dead", short)
        .await
        .unwrap();
    assert!(matches!(
        locks
            .try_acquire_tree("project:sub", "/srv/repo/sub", &b, "apply", short)
            .await,
        Err(LockError::Conflict(_))
    ));
    tokio::time::sleep(short * 2).await;
    // Expired: a nested tree is free...
    let sub = locks
        .try_acquire_tree("project:sub", "/srv/repo/sub", &b, "apply sub", MIN_TTL)
        .await
        .unwrap();
    locks.release("project:sub", &b, sub.token).await.unwrap();
    // ...and the same tree is taken over with a higher token, which fences
    // the old holder out.
    let taken = locks
        .try_acquire_tree("project:repo", "/srv/repo", &b, "apply plan live", MIN_TTL)
        .await
        .unwrap();
    assert!(taken.token > dead.token);
    assert_eq!(taken.holds, 1);
    assert!(!locks
        .is_current("project:repo", &a, dead.token)
        .await
        .unwrap());
    assert!(locks
        .is_current("project:repo", &b, taken.token)
        .await
        .unwrap());
    assert!(matches!(
        locks.renew("project:repo", &a, dead.token, MIN_TTL).await,
        Err(LockError::Expired { .. })
    ));
    // The live lock renews and blocks as before.
    locks
        .renew("project:repo", &b, taken.token, MIN_TTL)
        .await
        .unwrap();
    assert!(matches!(
        locks
            .try_acquire_tree("project:repo", "/srv/repo/", &a, "apply", MIN_TTL)
            .await,
        Err(LockError::Conflict(_))
    ));
}

async fn racing_nested_acquisitions_admit_one(backend: Backend) {
    let db = TestDb::new(backend).await;
    let locks = LockService::new(Db::connect(&db.url).await.unwrap());
    // Outer and inner acquired at the same moment, on two connections: the
    // overlap check of each must see the other's insert, or both would win.
    for round in 0..30 {
        let (a, b) = (Owner::new_session(), Owner::new_session());
        let outer = format!("/race/{round}");
        let inner = format!("/race/{round}/sub");
        let (ro, ri) = (format!("project:o{round}"), format!("project:i{round}"));
        let (ra, rb) = tokio::join!(
            locks.try_acquire_tree(&ro, &outer, &a, "apply", MIN_TTL),
            locks.try_acquire_tree(&ri, &inner, &b, "apply", MIN_TTL),
        );
        let won = [ra.is_ok(), rb.is_ok()];
        assert_eq!(
            won.iter().filter(|w| **w).count(),
            1,
            "round {round}: exactly one of the nested acquisitions wins: {ra:?} {rb:?}"
        );
    }
}

/// On PostgreSQL a tree lock's values are written into its request's text
/// (one request for the gate, the check and the insert): a project path or
/// an operation with quotes, backslashes and SQL in it must be stored and
/// compared as the exact text, and run nothing.
async fn tree_locks_take_hostile_paths_as_text(backend: Backend) {
    let db = TestDb::new(backend).await;
    let locks = LockService::new(Db::connect(&db.url).await.unwrap());
    let (a, b) = (Owner::new_session(), Owner::new_session());
    let path = r"/srv/it's\'; DELETE FROM locks; --\";
    let operation = r"apply in /srv/it's\'); DROP TABLE plans; --";
    let held = locks
        .try_acquire_tree("project:hostile", path, &a, operation, MIN_TTL)
        .await
        .unwrap();
    // The lock is the tree at that exact path: a nested one conflicts and
    // is told the operation exactly as given...
    match locks
        .try_acquire_tree("project:in", &format!("{path}/sub"), &b, "apply", MIN_TTL)
        .await
    {
        Err(LockError::Conflict(c)) => {
            assert_eq!(c.resource, "project:hostile");
            assert_eq!(c.operation, operation);
            assert_eq!(c.owner, a.id);
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    // ...a sibling that shares the text up to the quote does not...
    let sibling = locks
        .try_acquire_tree("project:sib", "/srv/it", &b, "apply", MIN_TTL)
        .await
        .unwrap();
    locks
        .release("project:sib", &b, sibling.token)
        .await
        .unwrap();
    // ...and nothing else ran: the lock is there, renewable, and the
    // tables are whole.
    let listed = locks.list().await.unwrap();
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0].operation, operation);
    locks
        .renew("project:hostile", &a, held.token, MIN_TTL)
        .await
        .unwrap();
    let raw = RawDb::connect(&db.url).await.unwrap();
    let plans: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM plans")
        .fetch_one(&raw.pool)
        .await
        .unwrap();
    assert_eq!(plans, 0);
    // A NUL, which PostgreSQL text cannot hold, is refused on the way in
    // and takes nothing.
    let nul = locks
        .try_acquire_tree("project:nul", "/srv/a\0b", &b, "apply", MIN_TTL)
        .await;
    if backend == Backend::Postgres {
        assert!(matches!(nul, Err(LockError::Database(_))), "{nul:?}");
    }
}

on_both_backends!(
    tree_locks_take_hostile_paths_as_text,
    racing_nested_acquisitions_admit_one,
    a_run_into_apply_respects_nested_tree_locks,
    two_applies_in_one_session_do_not_write_one_project_at_once,
    applies_on_nested_projects_exclude_each_other,
    sibling_projects_apply_in_parallel,
    an_expired_tree_lock_does_not_block,
);
