//! Operators' routes: locks (list, force-release with a reason), workers,
//! and the audit log every operator action is written to.

use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use sqlx::Row;

use super::auth::{CanAdmin, CanRead, Principal};
use super::error::ApiError;
use super::AppState;
use crate::fleet::{self, WorkerInfo};
use crate::locks::LockInfo;
use crate::Container;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/locks", get(locks))
        .route("/api/v1/locks/release", post(release))
        .route("/api/v1/workers", get(workers))
        .route("/api/v1/audit", get(audit_log))
}

/// `POST /api/v1/locks/release`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub struct ReleaseLock {
    /// The lock's resource (`plan:<id>`, `project:<id>`, …).
    pub resource: String,
    /// Why (required; kept in the audit log).
    pub reason: String,
}

/// What a force-release took away.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Released {
    /// The resource.
    pub resource: String,
    /// Whether a lease was held (and is now gone).
    pub released: bool,
    /// The session that held it.
    pub owner: Option<String>,
    /// Its fencing token (now fenced out).
    pub token: Option<i64>,
}

/// One entry of the audit log.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct AuditEntry {
    /// Position in the log.
    pub id: i64,
    /// When (ms since the epoch).
    pub at: i64,
    /// Who.
    pub actor: String,
    /// What: `lock.force_release`, `project.register`, `plan.approve`, …
    pub action: String,
    /// On what.
    pub target: String,
    /// The reason given.
    pub reason: String,
    /// What else is worth knowing (e.g. the holder a lock was taken from).
    pub detail: String,
}

/// Record an operator action.
pub(super) async fn audit(
    container: &Container,
    actor: &str,
    action: &str,
    target: &str,
    reason: &str,
    detail: &str,
) -> Result<(), ApiError> {
    let db = container.store().db();
    sqlx::query(&format!(
        "INSERT INTO audit_log (at, actor, action, target, reason, detail) VALUES ({}, $1, $2, $3, $4, $5)",
        db.now_ms()
    ))
    .bind(actor)
    .bind(action)
    .bind(target)
    .bind(reason)
    .bind(detail)
    .execute(&mut db.writer().await?)
    .await?;
    Ok(())
}

/// Every lease, expired ones marked `stale`.
#[utoipa::path(get, path = "/api/v1/locks", tag = "locks",
    responses((status = 200, body = [Object])), security(("bearer" = [])))]
pub(super) async fn locks(
    _: CanRead,
    State(state): State<AppState>,
) -> Result<Json<Vec<LockInfo>>, ApiError> {
    Ok(Json(state.container().locks().list().await?))
}

/// Take a lease away from its holder (admin; audited). The holder is
/// fenced out: its next write is refused.
#[utoipa::path(post, path = "/api/v1/locks/release", tag = "locks", request_body = ReleaseLock,
    responses((status = 200, body = Released), (status = 422, body = super::Problem)),
    security(("bearer" = [])))]
pub(super) async fn release(
    CanAdmin(who): CanAdmin,
    State(state): State<AppState>,
    Json(body): Json<ReleaseLock>,
) -> Result<Json<Released>, ApiError> {
    Ok(Json(
        force_release(&state, &who, &body.resource, &body.reason).await?,
    ))
}

/// Take `resource`'s lease away for `who`, giving `reason` (required):
/// its holder is fenced out and the release is audited, whether or not
/// the lease was held. The API and the dashboard both release this way.
pub(super) async fn force_release(
    state: &AppState,
    who: &Principal,
    resource: &str,
    reason: &str,
) -> Result<Released, ApiError> {
    let reason = reason.trim();
    if reason.is_empty() {
        return Err(ApiError::unprocessable("a force-release needs a reason"));
    }
    let gone = state.container().locks().force_release(resource).await?;
    let detail = gone
        .as_ref()
        .map(|(owner, token)| format!("owner {owner}, token {token}"))
        .unwrap_or_else(|| "not held".into());
    audit(
        state.container(),
        &who.who,
        "lock.force_release",
        resource,
        reason,
        &detail,
    )
    .await?;
    let (owner, token) = gone.unzip();
    Ok(Released {
        resource: resource.to_string(),
        released: owner.is_some(),
        owner,
        token,
    })
}

/// Registered workers: busy, idle, lost or stopped.
#[utoipa::path(get, path = "/api/v1/workers", tag = "workers",
    responses((status = 200, body = [Object])), security(("bearer" = [])))]
pub(super) async fn workers(
    _: CanRead,
    State(state): State<AppState>,
) -> Result<Json<Vec<WorkerInfo>>, ApiError> {
    Ok(Json(fleet::workers(state.container()).await?))
}

/// The audit log, newest first (the last 500 entries; admin).
#[utoipa::path(get, path = "/api/v1/audit", tag = "audit",
    responses((status = 200, body = [AuditEntry])), security(("bearer" = [])))]
pub(super) async fn audit_log(
    _: CanAdmin,
    State(state): State<AppState>,
) -> Result<Json<Vec<AuditEntry>>, ApiError> {
    let rows = sqlx::query(
        "SELECT id, at, actor, action, target, reason, detail FROM audit_log ORDER BY id DESC LIMIT 500",
    )
    .fetch_all(&state.container().store().db().pool)
    .await?;
    let entries = rows
        .iter()
        .map(|r| {
            Ok(AuditEntry {
                id: r.try_get("id")?,
                at: r.try_get("at")?,
                actor: r.try_get("actor")?,
                action: r.try_get("action")?,
                target: r.try_get("target")?,
                reason: r.try_get("reason")?,
                detail: r.try_get("detail")?,
            })
        })
        .collect::<Result<_, sqlx::Error>>()?;
    Ok(Json(entries))
}
