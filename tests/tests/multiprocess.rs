//! Eight OS processes race for the same plan: exactly one runs the phase,
//! the other seven exit 3 with a lock conflict naming the winner. Both
//! backends, for execute and for apply.

use std::process::{Child, Stdio};
use std::sync::Arc;

use lockstep::{Config, Container};
use lockstep_tests::fixtures::action;
use lockstep_tests::process::host_command;
use lockstep_tests::{on_both_backends, Backend, TestDb, TestPlugins};

const RACERS: usize = 8;

async fn prepared_plan(db: &TestDb, executed: bool) -> (std::path::PathBuf, String) {
    let project = db.project("p", &[]);
    let mut config = Config::for_project(&project);
    config.database_url = Some(db.url.clone());
    let c = Container::build_with_plugins(config, Arc::new(TestPlugins))
        .await
        .unwrap();
    let s = c.lifecycle();
    let ms = if executed { "10" } else { "4000" };
    let plan = s
        .new_plan(
            action("slow", "slow", &[("steps", "1"), ("ms", ms)]),
            &project,
        )
        .await
        .unwrap();
    s.strategize_plan(&plan.id).await.unwrap();
    if executed {
        s.execute_plan(&plan.id).await.unwrap();
    }
    (project, plan.id)
}

fn race(db: &TestDb, project: &std::path::Path, command: &str, id: &str, env: &[(&str, &str)]) {
    let children: Vec<Child> = (0..RACERS)
        .map(|_| {
            let mut cmd = host_command(&db.url, project);
            cmd.args(["--json", "plan", command, id])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped());
            for (k, v) in env {
                cmd.env(k, v);
            }
            cmd.spawn().expect("spawn racer")
        })
        .collect();
    let results: Vec<(u32, std::process::Output)> = children
        .into_iter()
        .map(|c| (c.id(), c.wait_with_output().expect("wait racer")))
        .collect();
    let winners: Vec<_> = results
        .iter()
        .filter(|(_, o)| o.status.code() == Some(0))
        .collect();
    assert_eq!(
        winners.len(),
        1,
        "exactly one racer runs {command}: {:?}",
        results
            .iter()
            .map(|(_, o)| (
                o.status.code(),
                String::from_utf8_lossy(&o.stdout).into_owned()
            ))
            .collect::<Vec<_>>()
    );
    let winner_pid = winners[0].0.to_string();
    for (pid, out) in results.iter().filter(|(_, o)| o.status.code() != Some(0)) {
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(
            out.status.code(),
            Some(3),
            "racer {pid} exits 3: {stdout} {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value =
            serde_json::from_str(stdout.trim()).expect("JSON error on stdout");
        assert_eq!(v["error"]["kind"], "lock_conflict");
        assert_eq!(v["error"]["resource"], format!("plan:{id}"));
        let owner = v["error"]["owner"].as_str().unwrap();
        assert_eq!(
            owner.split(':').nth(1),
            Some(winner_pid.as_str()),
            "the conflict names the winner: {owner}"
        );
        assert_eq!(v["error"]["holder"]["pid"].to_string(), winner_pid);
        assert!(v["error"]["operation"]
            .as_str()
            .unwrap()
            .starts_with(command));
    }
}

async fn eight_processes_execute(backend: Backend) {
    let db = TestDb::new(backend).await;
    let (project, id) = prepared_plan(&db, false).await;
    race(&db, &project, "execute", &id, &[]);
}

async fn eight_processes_apply(backend: Backend) {
    let db = TestDb::new(backend).await;
    let (project, id) = prepared_plan(&db, true).await;
    race(
        &db,
        &project,
        "apply",
        &id,
        &[(lockstep::workspace::apply::FAULT_DELAY_ENV, "4000")],
    );
    assert_eq!(
        std::fs::read_to_string(project.join("slow/s0.txt")).unwrap(),
        "done\n"
    );
}

on_both_backends!(eight_processes_execute, eight_processes_apply);
