//! `/metrics`: Prometheus text, read from the database at scrape time
//! (plans by state, queue depth, phase durations, attempts, worker
//! heartbeat age) plus this server's own counters (lock conflicts it
//! answered).

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use sqlx::Row;

use super::auth::CanRead;
use super::error::ApiError;
use super::AppState;

/// Bucket bounds of the phase duration histogram, in seconds.
const BUCKETS: &[f64] = &[0.1, 0.5, 1.0, 5.0, 30.0, 120.0, 600.0];

/// This server's counters.
#[derive(Debug, Default)]
pub(super) struct Counters {
    lock_conflicts: AtomicU64,
}

impl Counters {
    /// A request was answered with a lock conflict.
    pub(super) fn lock_conflict(&self) {
        self.lock_conflicts.fetch_add(1, Ordering::Relaxed);
    }
}

pub(super) fn routes() -> Router<AppState> {
    Router::new().route("/metrics", get(metrics))
}

/// Prometheus metrics (text exposition format 0.0.4).
#[utoipa::path(get, path = "/metrics", tag = "health",
    responses((status = 200, description = "Prometheus text", content_type = "text/plain")),
    security(("bearer" = [])))]
pub(super) async fn metrics(
    _: CanRead,
    State(state): State<AppState>,
) -> Result<impl IntoResponse, ApiError> {
    let mut out = String::new();
    plans(&state, &mut out).await?;
    queue(&state, &mut out).await?;
    durations(&state, &mut out).await?;
    workers(&state, &mut out).await?;
    let conflicts = state.counters().lock_conflicts.load(Ordering::Relaxed);
    let _ = writeln!(
        out,
        "# HELP lockstep_lock_conflicts_total Requests this server answered with a lock conflict (409).\n\
         # TYPE lockstep_lock_conflicts_total counter\nlockstep_lock_conflicts_total {conflicts}"
    );
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        out,
    ))
}

async fn plans(state: &AppState, out: &mut String) -> Result<(), ApiError> {
    let rows = sqlx::query(
        "SELECT phase, state, COUNT(*) AS n FROM plans GROUP BY phase, state ORDER BY phase, state",
    )
    .fetch_all(&state.container().store().db().pool)
    .await?;
    out.push_str("# HELP lockstep_plans Plans by phase and state.\n# TYPE lockstep_plans gauge\n");
    for r in &rows {
        let (phase, st, n): (String, String, i64) =
            (r.try_get("phase")?, r.try_get("state")?, r.try_get("n")?);
        let _ = writeln!(
            out,
            "lockstep_plans{{phase=\"{phase}\",state=\"{st}\"}} {n}"
        );
    }
    Ok(())
}

async fn queue(state: &AppState, out: &mut String) -> Result<(), ApiError> {
    let rows = sqlx::query(
        "SELECT queue, COUNT(*) AS n FROM plan_queue WHERE done = 0 GROUP BY queue ORDER BY queue",
    )
    .fetch_all(&state.container().store().db().pool)
    .await?;
    out.push_str(
        "# HELP lockstep_queue_depth Submitted plans not finished yet, by queue.\n# TYPE lockstep_queue_depth gauge\n",
    );
    for r in &rows {
        let (q, n): (String, i64) = (r.try_get("queue")?, r.try_get("n")?);
        let _ = writeln!(out, "lockstep_queue_depth{{queue=\"{}\"}} {n}", label(&q));
    }
    let rows = sqlx::query(
        "SELECT phase, COALESCE(outcome, 'running') AS outcome, COUNT(*) AS n FROM plan_attempts GROUP BY phase, COALESCE(outcome, 'running') ORDER BY 1, 2",
    )
    .fetch_all(&state.container().store().db().pool)
    .await?;
    out.push_str(
        "# HELP lockstep_attempts Attempts workers made at phases, by outcome.\n# TYPE lockstep_attempts gauge\n",
    );
    for r in &rows {
        let (p, o, n): (String, String, i64) =
            (r.try_get("phase")?, r.try_get("outcome")?, r.try_get("n")?);
        let _ = writeln!(
            out,
            "lockstep_attempts{{phase=\"{}\",outcome=\"{}\"}} {n}",
            label(&p),
            label(&o)
        );
    }
    Ok(())
}

async fn durations(state: &AppState, out: &mut String) -> Result<(), ApiError> {
    let mut cols = String::new();
    for (i, b) in BUCKETS.iter().enumerate() {
        let ms = (b * 1000.0) as i64;
        let _ = write!(
            cols,
            "SUM(CASE WHEN ended_at - started_at <= {ms} THEN 1 ELSE 0 END) AS b{i}, "
        );
    }
    let rows = sqlx::query(&format!(
        "SELECT phase, {cols} COUNT(*) AS n, CAST(SUM(ended_at - started_at) AS BIGINT) AS total
         FROM plan_attempts WHERE ended_at IS NOT NULL GROUP BY phase ORDER BY phase"
    ))
    .fetch_all(&state.container().store().db().pool)
    .await?;
    out.push_str(
        "# HELP lockstep_phase_duration_seconds How long finished phase attempts took.\n# TYPE lockstep_phase_duration_seconds histogram\n",
    );
    for r in &rows {
        let phase: String = r.try_get("phase")?;
        let phase = label(&phase);
        for (i, b) in BUCKETS.iter().enumerate() {
            let n: i64 = r.try_get(format!("b{i}").as_str())?;
            let _ = writeln!(
                out,
                "lockstep_phase_duration_seconds_bucket{{phase=\"{phase}\",le=\"{b}\"}} {n}"
            );
        }
        let n: i64 = r.try_get("n")?;
        let total: i64 = r.try_get("total")?;
        let _ = writeln!(
            out,
            "lockstep_phase_duration_seconds_bucket{{phase=\"{phase}\",le=\"+Inf\"}} {n}\n\
             lockstep_phase_duration_seconds_sum{{phase=\"{phase}\"}} {}\n\
             lockstep_phase_duration_seconds_count{{phase=\"{phase}\"}} {n}",
            total as f64 / 1000.0
        );
    }
    Ok(())
}

async fn workers(state: &AppState, out: &mut String) -> Result<(), ApiError> {
    let db = state.container().store().db();
    let rows = sqlx::query(&format!(
        "SELECT id, {} - heartbeat_at AS age FROM workers WHERE stopped_at IS NULL ORDER BY id",
        db.now_ms()
    ))
    .fetch_all(&db.pool)
    .await?;
    out.push_str(
        "# HELP lockstep_worker_heartbeat_age_seconds Time since each running worker's last heartbeat.\n# TYPE lockstep_worker_heartbeat_age_seconds gauge\n",
    );
    for r in &rows {
        let (id, age): (String, i64) = (r.try_get("id")?, r.try_get("age")?);
        let _ = writeln!(
            out,
            "lockstep_worker_heartbeat_age_seconds{{worker=\"{}\"}} {}",
            label(&id),
            age as f64 / 1000.0
        );
    }
    Ok(())
}

/// A label value escaped as the text format wants.
fn label(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}
