//! The plan lifecycle through the library, both backends: the full path,
//! the overlay, drift, invalid transitions, failures, panics, dropped
//! futures, recovery, sessions and containers excluding each other, fencing.

use std::sync::Arc;
use std::time::Duration;

use lockstep::lifecycle::progress::Progress;
use lockstep::lifecycle::{Command, LifecycleError};
use lockstep::locks::{Fence, LockError, LockService, Owner, MIN_TTL};
use lockstep::model::{ChangeKind, ChangeRecord};
use lockstep::model::{Phase, State, Status};
use lockstep::store::{Attempts, StateWrite, StoreError};
use lockstep::{Config, Container};
use lockstep_tests::db::RawDb;
use lockstep_tests::fixtures::{action, strategized};
use lockstep_tests::{on_both_backends, poll, Backend, TestDb, TestPlugins};
use sqlx::Row;
use tokio::sync::Notify;

async fn container(db: &TestDb) -> Container {
    let mut config = Config::for_project(db.dir.path());
    config.database_url = Some(db.url.clone());
    Container::build_with_plugins(config, Arc::new(TestPlugins))
        .await
        .unwrap()
}

fn status(phase: Phase, state: State) -> Status {
    Status::new(phase, state)
}

async fn full_lifecycle_with_overlay(backend: Backend) {
    let db = TestDb::new(backend).await;
    let project = db.project("p", &[("a.txt", "A\n")]);
    let c = container(&db).await;
    let s = c.lifecycle();
    let act = action(
        "files",
        "files",
        &[
            ("files", "a.txt,b/new.txt,a.txt"),
            ("content", "+x\n"),
            ("mode", "append"),
        ],
    );
    let plan = s.new_plan(act, &project).await.unwrap();
    assert_eq!(plan.status, status(Phase::Strategize, State::Queued));
    let plan = s.strategize_plan(&plan.id).await.unwrap();
    assert_eq!(plan.status, status(Phase::Strategize, State::Complete));
    assert_eq!(plan.proposal.as_ref().unwrap().steps.len(), 3);
    let plan = s.execute_plan(&plan.id).await.unwrap();
    assert_eq!(plan.status, status(Phase::Execute, State::Complete));
    assert_eq!(
        std::fs::read_to_string(project.join("a.txt")).unwrap(),
        "A\n",
        "execute writes nothing"
    );
    let changes = s.changes(&plan.id).await.unwrap();
    assert_eq!(
        changes.iter().map(|c| c.path.as_str()).collect::<Vec<_>>(),
        ["a.txt", "b/new.txt"]
    );
    // The third step saw the first step's change through the overlay.
    assert_eq!(changes[0].contents.as_deref(), Some(&b"A\n+x\n+x\n"[..]));
    // The status counts the stored changeset (in the database).
    assert_eq!(s.status(&plan.id).await.unwrap().changes, 2);
    let report = s.apply_plan(&plan.id).await.unwrap();
    assert_eq!(report.files, 2);
    assert_eq!(
        std::fs::read_to_string(project.join("a.txt")).unwrap(),
        "A\n+x\n+x\n"
    );
    assert_eq!(
        std::fs::read_to_string(project.join("b/new.txt")).unwrap(),
        "+x\n"
    );
    let view = s.status(&plan.id).await.unwrap();
    assert_eq!(view.plan.status, status(Phase::Apply, State::Applied));
    let path: Vec<_> = view.events.iter().map(|e| e.to.to_string()).collect();
    assert_eq!(
        path,
        [
            "strategize/queued",
            "strategize/processing",
            "strategize/complete",
            "execute/processing",
            "execute/complete",
            "apply/processing",
            "apply/applied"
        ]
    );
    assert!(view.events.iter().all(|e| e.actor == s.owner().id));
    assert!(
        c.locks().list().await.unwrap().is_empty(),
        "every lock released"
    );
    // Terminal: nothing more is allowed.
    assert!(matches!(
        s.execute_plan(&plan.id).await,
        Err(LifecycleError::InvalidTransition(_))
    ));
    assert!(matches!(
        s.cancel_plan(&plan.id).await,
        Err(LifecycleError::InvalidTransition(_))
    ));
}

async fn invalid_transitions_name_from_and_to(backend: Backend) {
    let db = TestDb::new(backend).await;
    let project = db.project("p", &[]);
    let c = container(&db).await;
    let s = c.lifecycle();
    let plan = s
        .new_plan(action("files", "files", &[("files", "x")]), &project)
        .await
        .unwrap();
    match s.apply_plan(&plan.id).await {
        Err(LifecycleError::InvalidTransition(e)) => {
            assert_eq!(e.from, Some("strategize/queued".parse().unwrap()));
            assert_eq!(e.to.to_string(), "apply/applied");
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        s.execute_plan(&plan.id).await,
        Err(LifecycleError::InvalidTransition(_))
    ));
    assert!(matches!(
        s.revert_plan(&plan.id).await,
        Err(LifecycleError::InvalidTransition(_))
    ));
    assert!(matches!(
        s.retry(&plan.id).await,
        Err(LifecycleError::InvalidTransition(_))
    ));
    assert!(matches!(
        s.status("nope").await,
        Err(LifecycleError::NotFound(_))
    ));
    let cancelled = s.cancel_plan(&plan.id).await.unwrap();
    assert_eq!(
        cancelled.status,
        status(Phase::Strategize, State::Cancelled)
    );
    assert!(matches!(
        s.strategize_plan(&plan.id).await,
        Err(LifecycleError::InvalidTransition(_))
    ));
}

async fn retrying_a_plan_that_is_not_errored_names_retry_and_the_status(backend: Backend) {
    let db = TestDb::new(backend).await;
    let project = db.project("p", &[]);
    let c = container(&db).await;
    let s = c.lifecycle();
    let plan = s
        .new_plan(action("files", "files", &[("files", "x")]), &project)
        .await
        .unwrap();
    let refused = |from: &'static str| {
        let s = &s;
        let id = plan.id.clone();
        async move {
            match s.retry(&id).await {
                Err(LifecycleError::InvalidTransition(e)) => {
                    assert_eq!(e.command, Command::Retry, "{e}");
                    assert_eq!(e.from, Some(from.parse().unwrap()));
                    assert!(
                        e.to_string()
                            .starts_with(&format!("cannot retry a plan in {from}")),
                        "{e}"
                    );
                }
                other => panic!("retry from {from}: {other:?}"),
            }
        }
    };
    refused("strategize/queued").await;
    s.strategize_plan(&plan.id).await.unwrap();
    refused("strategize/complete").await;
    s.execute_plan(&plan.id).await.unwrap();
    refused("execute/complete").await;
    s.apply_plan(&plan.id).await.unwrap();
    refused("apply/applied").await;
}

async fn drift_refuses_apply_and_revert_recovers(backend: Backend) {
    let db = TestDb::new(backend).await;
    let project = db.project("p", &[("a.txt", "A"), ("b.txt", "B")]);
    let c = container(&db).await;
    let s = c.lifecycle();
    let plan = strategized(
        &s,
        action(
            "files",
            "files",
            &[("files", "a.txt,b.txt"), ("content", "new")],
        ),
        &project,
    )
    .await;
    s.execute_plan(&plan.id).await.unwrap();
    std::fs::write(project.join("b.txt"), "edited by someone").unwrap();
    match s.apply_plan(&plan.id).await {
        Err(LifecycleError::ApplyDrift(d)) => assert_eq!(
            d.iter().map(|d| d.path.as_str()).collect::<Vec<_>>(),
            ["b.txt"]
        ),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        std::fs::read_to_string(project.join("a.txt")).unwrap(),
        "A",
        "nothing written"
    );
    let view = s.status(&plan.id).await.unwrap();
    assert_eq!(view.plan.status, status(Phase::Apply, State::Errored));
    assert!(view.plan.error.unwrap().contains("b.txt"));
    let reverted = s.revert_plan(&plan.id).await.unwrap();
    assert_eq!(reverted.status, status(Phase::Strategize, State::Queued));
    assert!(reverted.proposal.is_none());
    assert!(s.changes(&plan.id).await.unwrap().is_empty());
    s.strategize_plan(&plan.id).await.unwrap();
    s.execute_plan(&plan.id).await.unwrap();
    s.apply_plan(&plan.id).await.unwrap();
    assert_eq!(
        std::fs::read_to_string(project.join("b.txt")).unwrap(),
        "new"
    );
}

/// Errors keep what they are: a symlink that appeared before Apply is the
/// workspace's path refusal (not an I/O error with its cause dropped), a
/// plugin's failure names its phase as a `Phase`, and a missing project
/// directory keeps its `io::Error`.
async fn errors_are_typed_and_keep_their_cause(backend: Backend) {
    use lockstep::lifecycle::ActionError;
    use lockstep::workspace::{ApplyError, ChangeError, ProjectDirError};
    let db = TestDb::new(backend).await;
    let project = db.project("p", &[("src/b", "b")]);
    let outside = db.dir.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    let c = container(&db).await;
    let s = c.lifecycle();
    let act = action("files", "files", &[("files", "src/b"), ("content", "new")]);
    let plan = strategized(&s, act, &project).await;
    s.execute_plan(&plan.id).await.unwrap();
    std::fs::rename(project.join("src"), project.join("src.moved")).unwrap();
    std::os::unix::fs::symlink(&outside, project.join("src")).unwrap();
    let err = s.apply_plan(&plan.id).await.unwrap_err();
    let LifecycleError::Apply(ApplyError::Path(_)) = &err else {
        panic!("{err:?}");
    };
    let cause = std::error::Error::source(&err).expect("the refusal is kept");
    assert!(cause.downcast_ref::<ChangeError>().is_some(), "{cause:?}");
    assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 0);
    let view = s.status(&plan.id).await.unwrap();
    assert_eq!(view.plan.status, status(Phase::Apply, State::Errored));

    let plan = s
        .new_plan(action("files", "fail", &[("files", "x")]), &project)
        .await
        .unwrap();
    s.strategize_plan(&plan.id).await.unwrap();
    let err = s.execute_plan(&plan.id).await.unwrap_err();
    assert!(
        matches!(
            err,
            LifecycleError::Plugin {
                phase: Phase::Execute,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().starts_with("execute failed: "), "{err}");

    let missing = db.dir.path().join("no-such-project");
    let err = s
        .new_plan(action("files", "files", &[("files", "x")]), &missing)
        .await
        .unwrap_err();
    let LifecycleError::InvalidAction(ActionError::Project(ProjectDirError::Unresolved {
        source,
        ..
    })) = &err
    else {
        panic!("{err:?}");
    };
    assert_eq!(source.kind(), std::io::ErrorKind::NotFound);
}

async fn failures_error_the_phase_and_release(backend: Backend) {
    let db = TestDb::new(backend).await;
    let project = db.project("p", &[]);
    let c = container(&db).await;
    let s = c.lifecycle();
    for (executor, check) in [
        (
            "fail",
            (|e: &LifecycleError| matches!(e, LifecycleError::Plugin { .. }))
                as fn(&LifecycleError) -> bool,
        ),
        (
            "panic",
            |e| matches!(e, LifecycleError::Panicked { message, .. } if message.contains("on purpose")),
        ),
        ("escape", |e| matches!(e, LifecycleError::InvalidChange(_))),
    ] {
        let plan = s
            .new_plan(action("files", executor, &[("files", "x")]), &project)
            .await
            .unwrap();
        s.strategize_plan(&plan.id).await.unwrap();
        let err = s.execute_plan(&plan.id).await.unwrap_err();
        assert!(check(&err), "{executor}: {err:?}");
        let view = s.status(&plan.id).await.unwrap();
        assert_eq!(
            view.plan.status,
            status(Phase::Execute, State::Errored),
            "{executor}"
        );
        assert!(
            c.locks().list().await.unwrap().is_empty(),
            "{executor}: lock released"
        );
        // Retry runs the phase again (and fails the same way).
        assert!(s.retry(&plan.id).await.is_err());
        assert_eq!(
            s.revert_plan(&plan.id).await.unwrap().status,
            status(Phase::Strategize, State::Queued)
        );
    }
    assert!(!project.parent().unwrap().join("escaped.txt").exists());
}

/// Notified when a step of `s`'s running phase starts.
fn step_started(s: &mut lockstep::lifecycle::PlanLifecycleService) -> Arc<Notify> {
    let started = Arc::new(Notify::new());
    let notify = started.clone();
    s.set_progress(Arc::new(move |p: &Progress| {
        if matches!(p, Progress::StepStarted { .. }) {
            notify.notify_one();
        }
    }));
    started
}

async fn dropped_future_releases_and_recovers(backend: Backend) {
    let db = TestDb::new(backend).await;
    let project = db.project("p", &[]);
    let c = container(&db).await;
    let mut s = c.lifecycle();
    let plan = strategized(
        &s,
        action("slow", "slow", &[("steps", "1"), ("ms", "60000")]),
        &project,
    )
    .await;
    // Drop the execute future once its step is running.
    let step_started = step_started(&mut s);
    tokio::select! {
        r = s.execute_plan(&plan.id) => panic!("the 60 s step finished: {r:?}"),
        _ = step_started.notified() => {}
    }
    poll::until(
        "the dropped future's guard released the plan lock",
        Duration::from_secs(5),
        || async { c.locks().list().await.unwrap().is_empty() },
    )
    .await;
    // The plan was left in execute/processing; the next command recovers it.
    let other = c.lifecycle();
    let view = other.status(&plan.id).await.unwrap();
    assert_eq!(view.plan.status, status(Phase::Execute, State::Errored));
    assert!(view.plan.error.unwrap().contains("interrupted"));
    assert!(view.events.iter().any(|e| e.reason.contains("recovered")));
    // And it can be reverted and run again.
    other.revert_plan(&plan.id).await.unwrap();
}

async fn sessions_and_containers_exclude_each_other(backend: Backend) {
    let db = TestDb::new(backend).await;
    let project = db.project("p", &[]);
    let c1 = container(&db).await;
    let c2 = container(&db).await;
    let a = c1.lifecycle();
    let plan = a
        .new_plan(
            action("slow", "slow", &[("steps", "1"), ("ms", "1500")]),
            &project,
        )
        .await
        .unwrap();
    a.strategize_plan(&plan.id).await.unwrap();
    let id = plan.id.clone();
    let running = tokio::spawn(async move { a.execute_plan(&id).await.map(|p| p.status) });
    let resource = format!("plan:{}", plan.id);
    poll::until("A holds the plan lock", Duration::from_secs(10), || async {
        c1.locks()
            .list()
            .await
            .unwrap()
            .iter()
            .any(|l| l.resource == resource)
    })
    .await;
    let b_same = c1.lifecycle();
    let b_other = c2.lifecycle();
    for (who, session) in [("same container", &b_same), ("other container", &b_other)] {
        match session.execute_plan(&plan.id).await {
            Err(LifecycleError::LockConflict(conflict)) => {
                assert_eq!(conflict.resource, format!("plan:{}", plan.id), "{who}");
                assert_ne!(conflict.owner, session.owner().id, "{who}");
                assert!(conflict.operation.starts_with("execute plan"), "{who}");
            }
            other => panic!("{who}: expected a lock conflict, got {other:?}"),
        }
        assert!(
            matches!(
                session.cancel_plan(&plan.id).await,
                Err(LifecycleError::LockConflict(_))
            ),
            "{who}"
        );
    }
    assert_eq!(
        running.await.unwrap().unwrap(),
        status(Phase::Execute, State::Complete)
    );
    // With a wait, a second session gets the lock once the first is done.
    let mut waiting = c2.lifecycle();
    waiting.set_lock_wait(Duration::from_secs(5));
    waiting.apply_plan(&plan.id).await.unwrap();
}

async fn stale_holder_is_fenced_out(backend: Backend) {
    let db = TestDb::new(backend).await;
    let project = db.project("p", &[]);
    let c = container(&db).await;
    let s = c.lifecycle();
    let plan = s
        .new_plan(action("files", "files", &[("files", "x")]), &project)
        .await
        .unwrap();
    let locks: &LockService = c.locks();
    let resource = format!("plan:{}", plan.id);
    // A takes the plan lock and then stalls (no heartbeat) past its TTL.
    let (a, b) = (Owner::new_session(), Owner::new_session());
    let a_grant = locks
        .try_acquire(&resource, &a, "strategize", MIN_TTL)
        .await
        .unwrap();
    // B takes over the lease as soon as it has expired, and writes.
    let b_grant = std::cell::RefCell::new(None);
    poll::until(
        "B takes over A's expired lease",
        MIN_TTL + Duration::from_secs(5),
        || async {
            match locks
                .try_acquire(&resource, &b, "strategize", MIN_TTL)
                .await
            {
                Ok(grant) => {
                    *b_grant.borrow_mut() = Some(grant);
                    true
                }
                Err(LockError::Conflict(_)) => false,
                Err(e) => panic!("{e}"),
            }
        },
    )
    .await;
    let b_grant = b_grant.into_inner().unwrap();
    assert!(b_grant.token > a_grant.token);
    let queued = status(Phase::Strategize, State::Queued);
    let cancelled = status(Phase::Strategize, State::Cancelled);
    // A wakes up and tries to write with its stale token: refused.
    let stale = c
        .store()
        .transition(&StateWrite {
            plan_id: &plan.id,
            seen_version: plan.version,
            from: queued,
            to: cancelled,
            actor: &a.id,
            fence: Some(&Fence::new(resource.as_str(), a.id.as_str(), a_grant.token)),
            reason: "stale writer",
            error: None,
            release: &[],
            attempts: None,
        })
        .await;
    assert!(
        matches!(stale, Err(StoreError::Fenced { token, .. }) if token == a_grant.token),
        "{stale:?}"
    );
    // B's write with the current token goes through.
    c.store()
        .transition(&StateWrite {
            plan_id: &plan.id,
            seen_version: plan.version,
            from: queued,
            to: cancelled,
            actor: &b.id,
            fence: Some(&Fence::new(resource.as_str(), b.id.as_str(), b_grant.token)),
            reason: "current writer",
            error: None,
            release: &[],
            attempts: None,
        })
        .await
        .unwrap();
    let view = s.status(&plan.id).await.unwrap();
    assert_eq!(view.plan.lock_token, Some(b_grant.token));
    assert!(!view.events.iter().any(|e| e.reason == "stale writer"));
}

async fn graceful_shutdown_interrupts_the_phase(backend: Backend) {
    let db = TestDb::new(backend).await;
    let project = db.project("p", &[]);
    let c = container(&db).await;
    let mut s = c.lifecycle();
    let plan = strategized(
        &s,
        action("slow", "slow", &[("steps", "1"), ("ms", "60000")]),
        &project,
    )
    .await;
    // Shut down once the step is running.
    let token = s.shutdown_token();
    let step_started = step_started(&mut s);
    tokio::spawn(async move {
        step_started.notified().await;
        token.cancel();
    });
    assert!(matches!(
        s.execute_plan(&plan.id).await,
        Err(LifecycleError::Interrupted)
    ));
    assert!(c.locks().list().await.unwrap().is_empty());
    let view = s.status(&plan.id).await.unwrap();
    assert_eq!(view.plan.status, status(Phase::Execute, State::Errored));
    assert!(view.plan.error.unwrap().contains("interrupted"));
}

/// The statuses and reasons of a plan's history, and the phases a session
/// reported starting.
async fn history(s: &lockstep::lifecycle::PlanLifecycleService, id: &str) -> Vec<String> {
    let view = s.status(id).await.unwrap();
    assert!(view.events.iter().all(|e| e.actor == s.owner().id));
    view.events
        .iter()
        .map(|e| {
            let from = e.from.map_or("(new)".to_string(), |s| s.to_string());
            format!("{from} → {} ({})", e.to, e.reason)
        })
        .collect()
}

/// Record the phases `s` reports starting.
fn phases_started(
    s: &mut lockstep::lifecycle::PlanLifecycleService,
) -> Arc<std::sync::Mutex<Vec<Phase>>> {
    let phases = Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = phases.clone();
    s.set_progress(Arc::new(move |p: &Progress| {
        if let Progress::PhaseStarted { phase, .. } = p {
            seen.lock().unwrap().push(*phase);
        }
    }));
    phases
}

async fn a_chained_run_writes_what_three_phases_write(backend: Backend) {
    let db = TestDb::new(backend).await;
    let project = db.project("p", &[("a.txt", "A\n"), ("b.txt", "B\n")]);
    let c = container(&db).await;
    let mut one_by_one = c.lifecycle();
    let mut chained = c.lifecycle();
    let phases_one = phases_started(&mut one_by_one);
    let phases_chained = phases_started(&mut chained);
    let act = |file: &str| {
        action(
            "files",
            "files",
            &[("files", file), ("content", "+x\n"), ("mode", "append")],
        )
    };
    let a = one_by_one.new_plan(act("a.txt"), &project).await.unwrap();
    one_by_one.strategize_plan(&a.id).await.unwrap();
    one_by_one.execute_plan(&a.id).await.unwrap();
    one_by_one.apply_plan(&a.id).await.unwrap();
    let b = chained.new_plan(act("b.txt"), &project).await.unwrap();
    let done = chained.run_plan(&b.id).await.unwrap();
    assert_eq!(done.status, status(Phase::Apply, State::Applied));
    assert_eq!(
        std::fs::read_to_string(project.join("b.txt")).unwrap(),
        "B\n+x\n"
    );
    // The same statuses, reasons, versions and rows.
    assert_eq!(
        history(&one_by_one, &a.id).await,
        history(&chained, &b.id).await
    );
    let (va, vb) = (
        one_by_one.status(&a.id).await.unwrap(),
        chained.status(&b.id).await.unwrap(),
    );
    assert_eq!(va.plan.version, vb.plan.version);
    assert_eq!(vb.plan.lock_token.is_some(), va.plan.lock_token.is_some());
    assert_eq!(va.steps.len(), vb.steps.len());
    assert_eq!(va.changes, vb.changes);
    assert_eq!(
        va.plan.proposal.unwrap().steps.len(),
        vb.plan.proposal.unwrap().steps.len()
    );
    assert_eq!(
        c.store().changes(&b.id).await.unwrap()[0]
            .contents
            .as_deref(),
        Some(&b"B\n+x\n"[..])
    );
    let all = [Phase::Strategize, Phase::Execute, Phase::Apply];
    assert_eq!(*phases_one.lock().unwrap(), all);
    assert_eq!(*phases_chained.lock().unwrap(), all);
    assert!(
        c.locks().list().await.unwrap().is_empty(),
        "every lock released"
    );
    // From where a plan stands, up to a phase: here strategize and execute.
    let p = chained.new_plan(act("a.txt"), &project).await.unwrap();
    let p = chained
        .run_through(&p.id, Phase::Strategize, Phase::Execute)
        .await
        .unwrap();
    assert_eq!(p.status, status(Phase::Execute, State::Complete));
    assert!(c.locks().list().await.unwrap().is_empty());
    let p = chained
        .run_through(&p.id, Phase::Apply, Phase::Apply)
        .await
        .unwrap();
    assert_eq!(p.status, status(Phase::Apply, State::Applied));
    // A plan not ready for the first phase is refused before anything runs.
    assert!(matches!(
        chained.run_plan(&p.id).await,
        Err(LifecycleError::InvalidTransition(_))
    ));
}

/// The plan lock is taken over while the chain runs execute: the write
/// that would end execute and start apply is refused, nothing is applied,
/// and the apply lock taken for it is not left behind.
async fn a_chain_whose_lease_is_taken_over_is_refused(backend: Backend) {
    let db = TestDb::new(backend).await;
    let project = db.project("p", &[("a.txt", "A")]);
    let c = container(&db).await;
    let mut s = c.lifecycle();
    let plan = s
        .new_plan(
            action(
                "files",
                "files",
                &[("files", "a.txt"), ("content", "new"), ("delay_ms", "1000")],
            ),
            &project,
        )
        .await
        .unwrap();
    let step_started = step_started(&mut s);
    let id = plan.id.clone();
    let running = tokio::spawn(async move { s.run_plan(&id).await });
    step_started.notified().await;
    // An operator force-releases the lease (fencing its token out) and
    // another session takes the plan and writes it.
    let resource = format!("plan:{}", plan.id);
    let locks: &LockService = c.locks();
    let (old_owner, old_token) = locks.force_release(&resource).await.unwrap().unwrap();
    let thief = Owner::new_session();
    let grant = locks
        .try_acquire(&resource, &thief, "recover", MIN_TTL)
        .await
        .unwrap();
    assert!(grant.token > old_token);
    let now = c.store().plan(&plan.id).await.unwrap();
    assert_eq!(now.status, status(Phase::Execute, State::Processing));
    c.store()
        .transition(&StateWrite {
            plan_id: &plan.id,
            seen_version: now.version,
            from: now.status,
            to: status(Phase::Execute, State::Errored),
            actor: &thief.id,
            fence: Some(&Fence::new(
                resource.as_str(),
                thief.id.as_str(),
                grant.token,
            )),
            reason: "taken over",
            error: Some("taken over"),
            release: &[],
            attempts: None,
        })
        .await
        .unwrap();
    match running.await.unwrap() {
        Err(LifecycleError::LeaseLost { current, token, .. }) => {
            assert_eq!(current, status(Phase::Execute, State::Errored));
            assert_eq!(token, old_token);
        }
        other => panic!("expected the lease to be lost, got {other:?}"),
    }
    assert_eq!(std::fs::read_to_string(project.join("a.txt")).unwrap(), "A");
    let view = c.lifecycle().status(&plan.id).await.unwrap();
    assert_eq!(view.plan.status, status(Phase::Execute, State::Errored));
    assert_eq!(view.plan.lock_token, Some(grant.token));
    assert!(
        !view
            .events
            .iter()
            .any(|e| e.actor == old_owner && e.from.is_some_and(|f| f.phase == Phase::Execute)),
        "the stale session wrote nothing after the takeover: {:?}",
        view.events
    );
    let held: Vec<_> = locks.list().await.unwrap();
    assert_eq!(
        held.iter()
            .map(|l| (l.resource.as_str(), l.owner.as_str()))
            .collect::<Vec<_>>(),
        [(resource.as_str(), thief.id.as_str())],
        "only the new holder's lease is left"
    );
}

/// Another session holds the apply lock on the project when execute ends:
/// the chain ends there (execute complete, every lease of the run
/// released) and reports the holder.
async fn a_held_apply_lock_ends_the_chain_after_execute(backend: Backend) {
    let db = TestDb::new(backend).await;
    let project = db.project("p", &[("a.txt", "A")]);
    let c = container(&db).await;
    let s = c.lifecycle();
    let plan = s
        .new_plan(
            action("files", "files", &[("files", "a.txt"), ("content", "new")]),
            &project,
        )
        .await
        .unwrap();
    let other = Owner::new_session();
    let tree = format!("project:{}", plan.project_id);
    let held = c
        .locks()
        .lock_tree(
            &tree,
            &plan.project_root,
            &other,
            "apply elsewhere",
            MIN_TTL,
            Duration::ZERO,
        )
        .await
        .unwrap();
    match s.run_plan(&plan.id).await {
        Err(LifecycleError::LockConflict(conflict)) => {
            assert_eq!(conflict.resource, tree);
            assert_eq!(conflict.owner, other.id);
        }
        other => panic!("expected the apply lock's conflict, got {other:?}"),
    }
    assert_eq!(std::fs::read_to_string(project.join("a.txt")).unwrap(), "A");
    let view = s.status(&plan.id).await.unwrap();
    assert_eq!(view.plan.status, status(Phase::Execute, State::Complete));
    assert_eq!(view.changes, 1);
    let locks = c.locks().list().await.unwrap();
    assert_eq!(
        locks.iter().map(|l| l.owner.as_str()).collect::<Vec<_>>(),
        [other.id.as_str()]
    );
    held.release().await.unwrap();
    s.apply_plan(&plan.id).await.unwrap();
    assert_eq!(
        std::fs::read_to_string(project.join("a.txt")).unwrap(),
        "new"
    );
}

/// The session is shut down as execute's last step finishes: execute's
/// result is kept, apply never starts.
async fn shutdown_between_phases_stops_the_chain(backend: Backend) {
    let db = TestDb::new(backend).await;
    let project = db.project("p", &[("a.txt", "A")]);
    let c = container(&db).await;
    let mut s = c.lifecycle();
    let plan = s
        .new_plan(
            action("files", "files", &[("files", "a.txt"), ("content", "new")]),
            &project,
        )
        .await
        .unwrap();
    let token = s.shutdown_token();
    s.set_progress(Arc::new(move |p: &Progress| {
        if matches!(p, Progress::StepFinished { .. }) {
            token.cancel();
        }
    }));
    assert!(matches!(
        s.run_plan(&plan.id).await,
        Err(LifecycleError::Interrupted)
    ));
    assert_eq!(std::fs::read_to_string(project.join("a.txt")).unwrap(), "A");
    let other = c.lifecycle();
    let view = other.status(&plan.id).await.unwrap();
    assert_eq!(view.plan.status, status(Phase::Execute, State::Complete));
    assert_eq!(view.plan.error, None);
    assert_eq!(
        view.events.last().map(|e| e.reason.as_str()),
        Some("execute finished")
    );
    assert!(c.locks().list().await.unwrap().is_empty());
    other.apply_plan(&plan.id).await.unwrap();
    assert_eq!(
        std::fs::read_to_string(project.join("a.txt")).unwrap(),
        "new"
    );
}

/// A target changes after execute read it: the chain's apply refuses it
/// (drift), writes nothing and leaves the plan apply/errored.
async fn a_drifted_project_stops_the_chain_before_apply(backend: Backend) {
    let db = TestDb::new(backend).await;
    let project = db.project("p", &[("a.txt", "A"), ("b.txt", "B")]);
    let c = container(&db).await;
    let mut s = c.lifecycle();
    let plan = s
        .new_plan(
            action(
                "files",
                "files",
                &[("files", "a.txt,b.txt"), ("content", "new")],
            ),
            &project,
        )
        .await
        .unwrap();
    let edited = project.join("b.txt");
    s.set_progress(Arc::new(move |p: &Progress| {
        if matches!(p, Progress::StepFinished { index: 1, .. }) {
            std::fs::write(&edited, "edited by someone").unwrap();
        }
    }));
    match s.run_plan(&plan.id).await {
        Err(LifecycleError::ApplyDrift(d)) => assert_eq!(
            d.iter().map(|d| d.path.as_str()).collect::<Vec<_>>(),
            ["b.txt"]
        ),
        other => panic!("expected a drift, got {other:?}"),
    }
    assert_eq!(std::fs::read_to_string(project.join("a.txt")).unwrap(), "A");
    assert_eq!(
        std::fs::read_to_string(project.join("b.txt")).unwrap(),
        "edited by someone"
    );
    let view = s.status(&plan.id).await.unwrap();
    assert_eq!(view.plan.status, status(Phase::Apply, State::Errored));
    assert!(view.plan.error.unwrap().contains("b.txt"));
    assert!(c.locks().list().await.unwrap().is_empty());
}

/// A worker's attempt records ride every status write, a changeset too
/// large for one request included (its write is several statements in
/// one transaction): the execute attempt opened by the start is closed by
/// the completion, and the plan is written.
async fn attempt_records_ride_a_large_changeset(backend: Backend) {
    let db = TestDb::new(backend).await;
    let project = db.project("p", &[]);
    let c = container(&db).await;
    let s = c.lifecycle();
    let plan = s
        .new_plan(action("files", "files", &[("files", "x")]), &project)
        .await
        .unwrap();
    let resource = format!("plan:{}", plan.id);
    let owner = Owner::new_session();
    let grant = c
        .locks()
        .try_acquire(&resource, &owner, "execute", MIN_TTL)
        .await
        .unwrap();
    let fence = Fence::new(resource.as_str(), owner.id.as_str(), grant.token);
    let attempts = Attempts {
        worker: "worker-1".into(),
        reset: false,
    };
    let write = |from: Status, to: Status, seen_version: i64| StateWrite {
        plan_id: &plan.id,
        seen_version,
        from,
        to,
        actor: &owner.id,
        fence: Some(&fence),
        reason: "test",
        error: None,
        release: &[],
        attempts: Some(&attempts),
    };
    let (queued, running, done) = (
        status(Phase::Strategize, State::Queued),
        status(Phase::Execute, State::Processing),
        status(Phase::Execute, State::Complete),
    );
    let started = c
        .store()
        .transition(&write(queued, running, plan.version))
        .await
        .unwrap();
    let changes: Vec<ChangeRecord> = (0..1001)
        .map(|i| ChangeRecord {
            path: format!("f{i}.txt"),
            kind: ChangeKind::Write,
            contents: Some(b"x\n".to_vec()),
            base_contents: None,
            base_hash: None,
            new_hash: None,
        })
        .collect();
    let written = c
        .store()
        .complete_execute(&write(running, done, started.version), &changes, &[])
        .await
        .unwrap();
    assert_eq!(written.status, done);
    assert_eq!(c.store().change_count(&plan.id).await.unwrap(), 1001);
    let raw = RawDb::connect(&db.url).await.unwrap();
    let rows = sqlx::query(
        "SELECT phase, worker, token, outcome, ended_at FROM plan_attempts WHERE plan_id = $1",
    )
    .bind(&plan.id)
    .fetch_all(&raw.pool)
    .await
    .unwrap();
    assert_eq!(rows.len(), 1);
    let row = &rows[0];
    assert_eq!(row.get::<String, _>(0), "execute");
    assert_eq!(row.get::<String, _>(1), "worker-1");
    assert_eq!(row.get::<i64, _>(2), grant.token);
    assert_eq!(row.get::<Option<String>, _>(3).as_deref(), Some("ok"));
    assert!(row.get::<Option<i64>, _>(4).is_some());
}

on_both_backends!(
    attempt_records_ride_a_large_changeset,
    full_lifecycle_with_overlay,
    invalid_transitions_name_from_and_to,
    retrying_a_plan_that_is_not_errored_names_retry_and_the_status,
    drift_refuses_apply_and_revert_recovers,
    failures_error_the_phase_and_release,
    errors_are_typed_and_keep_their_cause,
    dropped_future_releases_and_recovers,
    sessions_and_containers_exclude_each_other,
    stale_holder_is_fenced_out,
    graceful_shutdown_interrupts_the_phase,
    a_chained_run_writes_what_three_phases_write,
    a_chain_whose_lease_is_taken_over_is_refused,
    a_held_apply_lock_ends_the_chain_after_execute,
    shutdown_between_phases_stops_the_chain,
    a_drifted_project_stops_the_chain_before_apply,
);
