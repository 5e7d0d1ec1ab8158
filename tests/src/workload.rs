//! A contended-lock workload in the manner of Jepsen's lock tests, and the
//! checker that judges its history.
//!
//! Worker processes each run many tasks that acquire a lease on one of a few
//! resources, hold it for a random time of up to twice the TTL (without
//! renewing, so holds outlive their lease), then make a **fenced write**: an
//! increment of a per-resource counter that the database accepts only while
//! the lease is current. Every grant, release and write goes to a JSONL
//! history. The checker then verifies, from the history alone, that no two
//! holders of a resource were ever live at once, that no write was accepted
//! from a stale token, and that each counter equals its accepted writes.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, Write};
use std::path::Path;
use std::time::Duration;

use lockstep::db::Db;
use lockstep::locks::{Fence, LockError, LockService, Owner};

use crate::db::RawDb;
use rand::Rng;
use serde::{Deserialize, Serialize};
use sqlx::Row;

/// One line of history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Event {
    /// A lease was granted.
    Grant {
        /// Resource.
        resource: String,
        /// Owner (one per task).
        owner: String,
        /// Fencing token.
        token: i64,
        /// Database time the grant was written, after any wait (ms).
        acquired_at: i64,
        /// Database time the lease runs out unless released (ms).
        expires_at: i64,
    },
    /// An acquisition was refused because another owner held the lease.
    Conflict {
        /// Resource.
        resource: String,
    },
    /// The holder is about to release; `before` is the database time read
    /// just before the release statement (a lower bound of the release).
    Release {
        /// Resource.
        resource: String,
        /// Token released.
        token: i64,
        /// Database time before the release (ms).
        before: i64,
    },
    /// A fenced write was attempted.
    Write {
        /// Resource.
        resource: String,
        /// Token the write was made under.
        token: i64,
        /// Whether the database accepted it.
        accepted: bool,
        /// Database time of an accepted write (ms).
        at: Option<i64>,
    },
    /// An operation failed for another reason (its outcome is unknown).
    Error {
        /// What failed.
        message: String,
    },
}

/// Workload parameters.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Database URL.
    pub url: String,
    /// Worker index.
    pub worker: usize,
    /// Tasks in this worker.
    pub tasks: usize,
    /// Number of resources contended for.
    pub resources: usize,
    /// Lease length.
    pub ttl: Duration,
    /// How long the worker runs.
    pub duration: Duration,
    /// Most acquisitions per task.
    pub max_ops_per_task: usize,
}

/// Create the counter table (idempotent).
pub async fn prepare(db: &RawDb, resources: usize) -> anyhow::Result<()> {
    sqlx::query("CREATE TABLE IF NOT EXISTS workload_counters (resource TEXT PRIMARY KEY, value BIGINT NOT NULL)")
        .execute(&db.pool)
        .await?;
    for r in 0..resources {
        let name = resource_name(r);
        let exists: Option<i64> =
            sqlx::query_scalar("SELECT value FROM workload_counters WHERE resource = $1")
                .bind(&name)
                .fetch_optional(&db.pool)
                .await?;
        if exists.is_none() {
            sqlx::query("INSERT INTO workload_counters (resource, value) VALUES ($1, 0)")
                .bind(&name)
                .execute(&db.pool)
                .await?;
        }
    }
    Ok(())
}

/// The name of resource `i`.
pub fn resource_name(i: usize) -> String {
    format!("workload:r{i}")
}

/// Run one worker process's tasks, appending events to `history`.
pub async fn run_worker(config: WorkerConfig, history: &Path) -> anyhow::Result<()> {
    let db = Db::connect(&config.url).await?;
    let locks = LockService::with_min_ttl(db.clone(), config.ttl);
    let raw = RawDb::connect(&config.url).await?;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Event>();
    let deadline = tokio::time::Instant::now() + config.duration;
    let mut handles = Vec::new();
    for _ in 0..config.tasks {
        let (locks, db, tx, config) = (locks.clone(), raw.clone(), tx.clone(), config.clone());
        handles.push(tokio::spawn(async move {
            task(locks, db, tx, config, deadline).await
        }));
    }
    drop(tx);
    let mut file = std::io::BufWriter::new(std::fs::File::create(history)?);
    while let Some(event) = rx.recv().await {
        serde_json::to_writer(&mut file, &event)?;
        file.write_all(b"\n")?;
    }
    file.flush()?;
    for h in handles {
        h.await?;
    }
    Ok(())
}

async fn task(
    locks: LockService,
    db: RawDb,
    tx: tokio::sync::mpsc::UnboundedSender<Event>,
    config: WorkerConfig,
    deadline: tokio::time::Instant,
) {
    let owner = Owner::new_session();
    let now_ms = db.backend.now_ms();
    let now_sql = format!("SELECT {now_ms}");
    let ttl_ms = config.ttl.as_millis() as u64;
    for _ in 0..config.max_ops_per_task {
        if tokio::time::Instant::now() >= deadline {
            break;
        }
        let (resource, hold_ms, pause_ms) = {
            let mut rng = rand::thread_rng();
            (
                resource_name(rng.gen_range(0..config.resources)),
                rng.gen_range(0..=2 * ttl_ms),
                rng.gen_range(5..50),
            )
        };
        match locks
            .try_acquire(&resource, &owner, "workload", config.ttl)
            .await
        {
            Ok(grant) => {
                let _ = tx.send(Event::Grant {
                    resource: resource.clone(),
                    owner: owner.id.clone(),
                    token: grant.token,
                    acquired_at: grant.granted_at,
                    expires_at: grant.expires_at,
                });
                tokio::time::sleep(Duration::from_millis(hold_ms)).await;
                // The fenced write: the database accepts it only while the
                // lease is current.
                let fence = Fence::new(resource.as_str(), owner.id.as_str(), grant.token);
                // The instant returned must be the one the fence was judged
                // at: PostgreSQL's clock_timestamp() moves within a
                // statement, so it is read once in a CTE; SQLite's clock is
                // fixed for the whole statement.
                let write_sql = match db.backend {
                    lockstep::db::Backend::Postgres => format!(
                        "WITH clock AS (SELECT {now_ms} AS now)
                         UPDATE workload_counters SET value = value + 1 FROM clock
                         WHERE resource = $1 AND {} RETURNING clock.now",
                        fence.condition_at(2, "clock.now")
                    ),
                    lockstep::db::Backend::Sqlite => format!(
                        "UPDATE workload_counters SET value = value + 1
                         WHERE resource = $1 AND {} RETURNING {now_ms}",
                        fence.condition(db.backend, 2)
                    ),
                };
                let written: Result<Option<i64>, sqlx::Error> = fence
                    .bind(sqlx::query(&write_sql).bind(&resource))
                    .fetch_optional(&db.pool)
                    .await
                    .and_then(|row| row.map(|r| r.try_get::<i64, _>(0)).transpose());
                match written {
                    Ok(at) => {
                        let _ = tx.send(Event::Write {
                            resource: resource.clone(),
                            token: grant.token,
                            accepted: at.is_some(),
                            at,
                        });
                    }
                    Err(e) => {
                        let _ = tx.send(Event::Error {
                            message: format!("write: {e}"),
                        });
                    }
                }
                match sqlx::query_scalar::<_, i64>(&now_sql)
                    .fetch_one(&db.pool)
                    .await
                {
                    Ok(before) => {
                        let _ = tx.send(Event::Release {
                            resource: resource.clone(),
                            token: grant.token,
                            before,
                        });
                        if let Err(e) = locks.release(&resource, &owner, grant.token).await {
                            let _ = tx.send(Event::Error {
                                message: format!("release: {e}"),
                            });
                        }
                    }
                    Err(e) => {
                        let _ = tx.send(Event::Error {
                            message: format!("clock: {e}"),
                        });
                    }
                }
            }
            Err(LockError::Conflict(_)) => {
                let _ = tx.send(Event::Conflict { resource });
            }
            Err(e) => {
                let _ = tx.send(Event::Error {
                    message: format!("acquire: {e}"),
                });
            }
        }
        tokio::time::sleep(Duration::from_millis(pause_ms)).await;
    }
}

/// What the checker found.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    /// Acquisition attempts (grants + conflicts + failed acquisitions).
    pub operations: usize,
    /// Grants.
    pub grants: usize,
    /// Refused acquisitions.
    pub conflicts: usize,
    /// Grants that took over a lease whose holder had not released it.
    pub takeovers: usize,
    /// Fenced writes the database accepted.
    pub writes_accepted: usize,
    /// Fenced writes refused because the lease was stale.
    pub stale_writes_rejected: usize,
    /// Operations whose outcome is unknown (database errors).
    pub errors: usize,
    /// Violations; empty when the history is correct.
    pub violations: Vec<String>,
}

/// Read every `*.jsonl` history in `dir`.
pub fn read_histories(dir: &Path) -> anyhow::Result<Vec<Event>> {
    let mut events = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "jsonl") {
            for line in std::io::BufReader::new(std::fs::File::open(&path)?).lines() {
                let line = line?;
                if !line.trim().is_empty() {
                    events.push(serde_json::from_str(&line)?);
                }
            }
        }
    }
    Ok(events)
}

/// Judge a history. `counters` are the final counter values per resource
/// (pass `None` to skip that check, e.g. for synthetic histories).
pub fn check(events: &[Event], counters: Option<&BTreeMap<String, i64>>) -> Report {
    let mut report = Report::default();
    // Per resource: grants sorted by acquisition, with their release bound.
    struct Lease {
        owner: String,
        token: i64,
        acquired_at: i64,
        expires_at: i64,
        released_before: Option<i64>,
    }
    let mut leases: HashMap<String, Vec<Lease>> = HashMap::new();
    let mut releases: HashMap<(String, i64), i64> = HashMap::new();
    let mut accepted: HashMap<String, Vec<(i64, Option<i64>)>> = HashMap::new();
    for e in events {
        match e {
            Event::Grant {
                resource,
                owner,
                token,
                acquired_at,
                expires_at,
            } => {
                report.operations += 1;
                report.grants += 1;
                leases.entry(resource.clone()).or_default().push(Lease {
                    owner: owner.clone(),
                    token: *token,
                    acquired_at: *acquired_at,
                    expires_at: *expires_at,
                    released_before: None,
                });
            }
            Event::Conflict { .. } => {
                report.operations += 1;
                report.conflicts += 1;
            }
            Event::Release {
                resource,
                token,
                before,
            } => {
                releases.insert((resource.clone(), *token), *before);
            }
            Event::Write {
                resource,
                token,
                accepted: true,
                at,
            } => {
                report.writes_accepted += 1;
                accepted
                    .entry(resource.clone())
                    .or_default()
                    .push((*token, *at));
            }
            Event::Write {
                accepted: false, ..
            } => report.stale_writes_rejected += 1,
            Event::Error { message } => {
                report.errors += 1;
                if message.starts_with("acquire") {
                    report.operations += 1;
                }
            }
        }
    }
    for (resource, list) in leases.iter_mut() {
        for lease in list.iter_mut() {
            lease.released_before = releases.get(&(resource.clone(), lease.token)).copied();
        }
        list.sort_by_key(|l| (l.acquired_at, l.token));
        for pair in list.windows(2) {
            let (a, b) = (&pair[0], &pair[1]);
            if b.token <= a.token {
                report.violations.push(format!(
                    "{resource}: token {} granted after token {} (tokens must grow)",
                    b.token, a.token
                ));
            }
            let a_end = a
                .released_before
                .map_or(a.expires_at, |r| r.min(a.expires_at));
            if b.acquired_at < a_end {
                report.violations.push(format!(
                    "{resource}: two live holders: {} (token {}, live until {}) and {} (token {}, from {})",
                    a.owner, a.token, a_end, b.owner, b.token, b.acquired_at
                ));
            }
            if a.released_before.is_none_or(|r| r > b.acquired_at) {
                report.takeovers += 1;
            }
        }
        for (token, at) in accepted.get(resource).into_iter().flatten() {
            let Some(grant) = list.iter().find(|l| l.token == *token) else {
                report.violations.push(format!(
                    "{resource}: write accepted for unknown token {token}"
                ));
                continue;
            };
            let at = at.unwrap_or(i64::MAX);
            if at >= grant.expires_at {
                report.violations.push(format!(
                    "{resource}: write with token {token} accepted at {at}, after its lease expired at {}",
                    grant.expires_at
                ));
            }
            // Times are whole milliseconds of the database clock: a grant in
            // the same millisecond as the write may have come after it, so
            // only a grant strictly before the write proves it stale.
            if let Some(newer) = list.iter().find(|l| l.token > *token && l.acquired_at < at) {
                report.violations.push(format!(
                    "{resource}: stale write accepted: token {token} at {at}, but token {} was granted at {}",
                    newer.token, newer.acquired_at
                ));
            }
        }
    }
    if let Some(counters) = counters {
        for (resource, value) in counters {
            let n = accepted.get(resource).map_or(0, Vec::len) as i64;
            if *value != n {
                report.violations.push(format!(
                    "{resource}: counter is {value} but {n} writes were accepted"
                ));
            }
        }
    }
    report
}

/// Read the final counters.
pub async fn counters(db: &RawDb) -> anyhow::Result<BTreeMap<String, i64>> {
    let rows = sqlx::query("SELECT resource, value FROM workload_counters")
        .fetch_all(&db.pool)
        .await?;
    rows.iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(owner: &str, token: i64, acquired_at: i64, expires_at: i64) -> Event {
        Event::Grant {
            resource: "r".into(),
            owner: owner.into(),
            token,
            acquired_at,
            expires_at,
        }
    }
    fn release(token: i64, before: i64) -> Event {
        Event::Release {
            resource: "r".into(),
            token,
            before,
        }
    }
    fn write(token: i64, accepted: bool, at: Option<i64>) -> Event {
        Event::Write {
            resource: "r".into(),
            token,
            accepted,
            at,
        }
    }

    #[test]
    fn a_correct_history_passes() {
        let h = [
            grant("a", 1, 0, 100),
            write(1, true, Some(50)),
            release(1, 60),
            grant("b", 2, 70, 170),
            // b stalls past expiry; c takes over; b's late write is refused.
            grant("c", 3, 180, 280),
            write(2, false, None),
            write(3, true, Some(200)),
            release(3, 210),
        ];
        let counters = BTreeMap::from([("r".to_string(), 2)]);
        let r = check(&h, Some(&counters));
        assert!(r.violations.is_empty(), "{:?}", r.violations);
        assert_eq!(
            (
                r.grants,
                r.takeovers,
                r.stale_writes_rejected,
                r.writes_accepted
            ),
            (3, 1, 1, 2)
        );
    }

    #[test]
    fn a_double_holder_fails() {
        let h = [grant("a", 1, 0, 100), grant("b", 2, 50, 150)];
        let r = check(&h, None);
        assert!(
            r.violations.iter().any(|v| v.contains("two live holders")),
            "{:?}",
            r.violations
        );
    }

    #[test]
    fn a_stale_accepted_write_fails() {
        let h = [
            grant("a", 1, 0, 100),
            grant("b", 2, 120, 220),
            write(1, true, Some(130)),
        ];
        let r = check(&h, None);
        assert!(
            r.violations
                .iter()
                .any(|v| v.contains("stale write accepted")),
            "{:?}",
            r.violations
        );
        assert!(
            r.violations
                .iter()
                .any(|v| v.contains("after its lease expired")),
            "{:?}",
            r.violations
        );
    }

    #[test]
    fn a_grant_in_the_same_millisecond_is_not_proof() {
        let h = [
            grant("a", 1, 0, 100),
            write(1, true, Some(50)),
            release(1, 50),
            grant("b", 2, 50, 150),
        ];
        assert!(check(&h, None).violations.is_empty());
    }

    #[test]
    fn a_counter_mismatch_fails() {
        let h = [grant("a", 1, 0, 100), write(1, true, Some(10))];
        let counters = BTreeMap::from([("r".to_string(), 2)]);
        assert!(!check(&h, Some(&counters)).violations.is_empty());
    }

    #[test]
    fn shrinking_tokens_fail() {
        let h = [
            grant("a", 5, 0, 100),
            release(5, 10),
            grant("b", 4, 20, 120),
        ];
        assert!(check(&h, None)
            .violations
            .iter()
            .any(|v| v.contains("tokens must grow")));
    }
}
