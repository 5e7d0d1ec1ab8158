//! What an operator does to plans: approve, cancel, retry, revert — one
//! plan at a time or in bulk (by ids or by a filter). Each calls the fleet
//! and the lifecycle service, as `lockstep plan …` does, and is audited.

use std::fmt;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::post;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use super::auth::{CanOperate, Principal};
use super::error::ApiError;
use super::ops::audit;
use super::plans::{filter, queue_entry};
use super::AppState;
use crate::fleet::{self, FleetError};
use crate::lifecycle::LifecycleError;
use crate::model::{PlanRecord, State as PlanState};
use crate::store::PlanFilter;

/// Most plans one bulk request acts on.
pub const BULK_MAX: usize = 1000;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/plans/{id}/approve", post(approve))
        .route("/api/v1/plans/{id}/cancel", post(cancel))
        .route("/api/v1/plans/{id}/retry", post(retry))
        .route("/api/v1/plans/{id}/revert", post(revert))
        .route("/api/v1/plans/actions", post(bulk))
}

/// An action on a plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum PlanAction {
    /// Let a submitted plan apply once executed.
    Approve,
    /// Cancel it (or ask its worker to).
    Cancel,
    /// Put a plan that errored for good back in the queue.
    Retry,
    /// Discard its changeset and strategize again (approval withdrawn).
    Revert,
}

impl fmt::Display for PlanAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PlanAction::Approve => "approve",
            PlanAction::Cancel => "cancel",
            PlanAction::Retry => "retry",
            PlanAction::Revert => "revert",
        })
    }
}

/// What an action did.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ActionResult {
    /// The plan.
    pub plan_id: String,
    /// The action.
    pub action: PlanAction,
    /// `approved`, `cancelled`, `cancel-requested` (its worker stops it
    /// within a heartbeat), `requeued` or `reverted`.
    pub result: String,
    /// The plan's status now (`phase/state`).
    pub status: String,
}

fn done(plan: &PlanRecord, action: PlanAction, result: &str) -> ActionResult {
    ActionResult {
        plan_id: plan.id.clone(),
        action,
        result: result.to_string(),
        status: plan.status.to_string(),
    }
}

/// What an action does to a plan, decided from its status and its queue
/// entry alone (the lifecycle still checks the transition under the plan
/// lock where one is taken).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Effect {
    /// Mark it approved.
    Approve,
    /// Cancel now; `ask_worker`: first ask the worker running it to stop.
    Cancel {
        /// The plan is queued and unfinished: a worker may hold it.
        ask_worker: bool,
    },
    /// Put it back in the queue.
    Requeue,
    /// Revert it; `requeue`: then withdraw the approval and queue it again.
    Revert {
        /// The plan was submitted.
        requeue: bool,
    },
}

/// Why an action is refused before anything is touched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Refusal {
    /// The plan was never submitted to the queue.
    NotQueued,
    /// Applied or cancelled (or done in the queue): nothing to approve.
    Finished,
    /// Only a plan that errored for good can be retried.
    NotErroredForGood,
}

/// The plan actions' table: `queued` is `None` for a plan that was not
/// submitted, else whether its queue entry is done.
pub(super) fn decide(
    action: PlanAction,
    status: crate::model::Status,
    queued: Option<bool>,
) -> Result<Effect, Refusal> {
    let finished = matches!(status.state, PlanState::Applied | PlanState::Cancelled);
    match (action, queued) {
        (PlanAction::Approve, None) | (PlanAction::Retry, None) => Err(Refusal::NotQueued),
        (PlanAction::Approve, Some(done)) if done || finished => Err(Refusal::Finished),
        (PlanAction::Approve, Some(_)) => Ok(Effect::Approve),
        (PlanAction::Cancel, q) => Ok(Effect::Cancel {
            ask_worker: q == Some(false),
        }),
        (PlanAction::Retry, Some(true)) if status.state == PlanState::Errored => {
            Ok(Effect::Requeue)
        }
        (PlanAction::Retry, Some(_)) => Err(Refusal::NotErroredForGood),
        (PlanAction::Revert, q) => Ok(Effect::Revert {
            requeue: q.is_some(),
        }),
    }
}

fn refused(r: Refusal, plan: &PlanRecord) -> ApiError {
    let id = &plan.id;
    match r {
        Refusal::NotQueued => FleetError::NotQueued(id.clone()).into(),
        Refusal::Finished => ApiError::Conflict(format!(
            "plan `{id}` is finished ({}): nothing to approve",
            plan.status
        )),
        Refusal::NotErroredForGood => ApiError::Conflict(format!(
            "plan `{id}` is {}: only a plan that errored for good can be retried (its worker retries the others by itself)",
            plan.status
        )),
    }
}

/// Carry out `action` on plan `id` for `who`.
pub(super) async fn act(
    state: &AppState,
    who: &Principal,
    id: &str,
    action: PlanAction,
) -> Result<ActionResult, ApiError> {
    let c = state.container();
    let plan = c.store().plan(id).await?;
    let entry = queue_entry(c, id).await?;
    let effect = decide(action, plan.status, entry.as_ref().map(|e| e.done))
        .map_err(|r| refused(r, &plan))?;
    let result = match effect {
        Effect::Approve => done(&fleet::approve(c, id).await?, action, "approved"),
        Effect::Cancel { ask_worker } => cancel_plan(state, &plan, ask_worker).await?,
        Effect::Requeue => {
            fleet::requeue(c, id).await?;
            done(&c.store().plan(id).await?, action, "requeued")
        }
        Effect::Revert { requeue } => {
            let session = c.lifecycle();
            let reverted = session.revert_plan(id).await;
            let _ = session.close().await;
            let plan = reverted?;
            if requeue {
                fleet::withdraw_approval(c, id).await?;
                fleet::requeue(c, id).await?;
            }
            done(&plan, action, "reverted")
        }
    };
    audit(
        c,
        &who.who,
        &format!("plan.{action}"),
        id,
        "",
        &result.result,
    )
    .await?;
    Ok(result)
}

async fn cancel_plan(
    state: &AppState,
    plan: &PlanRecord,
    ask_worker: bool,
) -> Result<ActionResult, ApiError> {
    let c = state.container();
    let id = plan.id.as_str();
    if ask_worker {
        fleet::request_cancel(c, id).await?;
    }
    let session = c.lifecycle();
    let now = session.cancel_plan(id).await;
    let _ = session.close().await;
    match now {
        Ok(p) => Ok(done(&p, PlanAction::Cancel, "cancelled")),
        // A worker runs it: it stops the plugin and cancels within a heartbeat.
        Err(LifecycleError::LockConflict(_)) if ask_worker => {
            Ok(done(plan, PlanAction::Cancel, "cancel-requested"))
        }
        Err(e) => Err(e.into()),
    }
}

/// Count a lock conflict in the metrics on its way out.
fn counted(state: &AppState, e: ApiError) -> ApiError {
    if e.lock_conflict().is_some() {
        state.counters().lock_conflict();
    }
    e
}

async fn one(
    state: AppState,
    who: Principal,
    id: String,
    action: PlanAction,
) -> Result<Json<ActionResult>, ApiError> {
    act(&state, &who, &id, action)
        .await
        .map(Json)
        .map_err(|e| counted(&state, e))
}

/// Approve a submitted plan: a worker applies it once executed.
#[utoipa::path(post, path = "/api/v1/plans/{id}/approve", tag = "plan actions",
    params(("id" = String, Path, description = "plan id")),
    responses((status = 200, body = ActionResult), (status = 409, body = super::Problem)),
    security(("bearer" = [])))]
pub(super) async fn approve(
    CanOperate(who): CanOperate,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<ActionResult>, ApiError> {
    one(state, who, id, PlanAction::Approve).await
}

/// Cancel a plan; a plan a worker is running is cancelled by that worker
/// within one heartbeat (`cancel-requested`).
#[utoipa::path(post, path = "/api/v1/plans/{id}/cancel", tag = "plan actions",
    params(("id" = String, Path, description = "plan id")),
    responses((status = 200, body = ActionResult), (status = 409, body = super::Problem)),
    security(("bearer" = [])))]
pub(super) async fn cancel(
    CanOperate(who): CanOperate,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<ActionResult>, ApiError> {
    one(state, who, id, PlanAction::Cancel).await
}

/// Put a plan that errored for good back in the queue.
#[utoipa::path(post, path = "/api/v1/plans/{id}/retry", tag = "plan actions",
    params(("id" = String, Path, description = "plan id")),
    responses((status = 200, body = ActionResult), (status = 409, body = super::Problem)),
    security(("bearer" = [])))]
pub(super) async fn retry(
    CanOperate(who): CanOperate,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<ActionResult>, ApiError> {
    one(state, who, id, PlanAction::Retry).await
}

/// Discard the plan's changeset and strategize again; its approval is
/// withdrawn. A plan whose lock another session holds is refused with 409
/// and the holder.
#[utoipa::path(post, path = "/api/v1/plans/{id}/revert", tag = "plan actions",
    params(("id" = String, Path, description = "plan id")),
    responses((status = 200, body = ActionResult), (status = 409, body = super::Problem)),
    security(("bearer" = [])))]
pub(super) async fn revert(
    CanOperate(who): CanOperate,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<ActionResult>, ApiError> {
    one(state, who, id, PlanAction::Revert).await
}

/// `POST /api/v1/plans/actions`: `ids`, or a `filter`, not both.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BulkAction {
    /// What to do.
    pub action: PlanAction,
    /// These plans.
    #[serde(default)]
    pub ids: Option<Vec<String>>,
    /// Or every plan matching this (at most 1000).
    #[serde(default)]
    pub filter: Option<BulkFilter>,
}

/// Which plans a bulk action takes.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BulkFilter {
    /// Phase.
    pub phase: Option<String>,
    /// State.
    pub state: Option<String>,
    /// Project (id or registered path).
    pub project: Option<String>,
}

/// One plan's outcome in a bulk action.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct BulkItem {
    /// The plan.
    pub plan_id: String,
    /// Whether the action succeeded.
    pub ok: bool,
    /// What it did (when `ok`).
    pub result: Option<ActionResult>,
    /// Why not (when not `ok`).
    pub error: Option<super::Problem>,
}

/// Every plan's outcome.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct BulkResult {
    /// In the order the plans were taken.
    pub items: Vec<BulkItem>,
    /// How many succeeded.
    pub succeeded: usize,
    /// How many failed.
    pub failed: usize,
}

/// Approve, cancel, retry or revert many plans: by ids, or every plan
/// matching a filter (at most 1000). Each plan succeeds or fails on its own.
#[utoipa::path(post, path = "/api/v1/plans/actions", tag = "plan actions", request_body = BulkAction,
    responses((status = 200, body = BulkResult), (status = 400, body = super::Problem)),
    security(("bearer" = [])))]
pub(super) async fn bulk(
    CanOperate(who): CanOperate,
    State(state): State<AppState>,
    Json(body): Json<BulkAction>,
) -> Result<impl IntoResponse, ApiError> {
    let ids = match (body.ids, body.filter) {
        (Some(ids), None) if ids.len() <= BULK_MAX => ids,
        (Some(_), None) => {
            return Err(ApiError::bad_request(format!(
                "at most {BULK_MAX} ids at a time"
            )))
        }
        (None, Some(f)) => {
            let filter = filter(&state, f.phase, f.state, f.project).await?;
            matching_ids(&state, &filter).await?
        }
        _ => return Err(ApiError::bad_request("give either `ids` or `filter`")),
    };
    Ok((
        StatusCode::OK,
        Json(act_on_each(&state, &who, ids, body.action).await),
    ))
}

/// The plans a bulk action by `filter` takes: the newest [`BULK_MAX`]
/// matching it.
pub(super) async fn matching_ids(
    state: &AppState,
    filter: &PlanFilter,
) -> Result<Vec<String>, ApiError> {
    let page = state
        .container()
        .store()
        .plans_page(filter, None, BULK_MAX)
        .await?;
    Ok(page.plans.into_iter().map(|p| p.id).collect())
}

/// Carry out `action` on each plan of `ids` for `who`, in order; each
/// succeeds or fails on its own.
pub(super) async fn act_on_each(
    state: &AppState,
    who: &Principal,
    ids: Vec<String>,
    action: PlanAction,
) -> BulkResult {
    let mut items = Vec::with_capacity(ids.len());
    for id in ids {
        let item = match act(state, who, &id, action).await {
            Ok(r) => BulkItem {
                plan_id: id,
                ok: true,
                result: Some(r),
                error: None,
            },
            Err(e) => BulkItem {
                plan_id: id,
                ok: false,
                result: None,
                error: Some(counted(state, e).problem()),
            },
        };
        items.push(item);
    }
    let succeeded = items.iter().filter(|i| i.ok).count();
    let failed = items.len() - succeeded;
    BulkResult {
        items,
        succeeded,
        failed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Phase, Status, PHASES, STATES};

    /// The table, written out again independently of `decide`.
    fn expected(a: PlanAction, s: Status, queued: Option<bool>) -> Result<Effect, Refusal> {
        use PlanAction::*;
        let terminal = s.state == PlanState::Applied || s.state == PlanState::Cancelled;
        if queued.is_none() && (a == Approve || a == Retry) {
            return Err(Refusal::NotQueued);
        }
        Ok(match a {
            Approve if queued == Some(true) || terminal => return Err(Refusal::Finished),
            Approve => Effect::Approve,
            Cancel => Effect::Cancel {
                ask_worker: queued == Some(false),
            },
            Retry if queued == Some(true) && s.state == PlanState::Errored => Effect::Requeue,
            Retry => return Err(Refusal::NotErroredForGood),
            Revert => Effect::Revert {
                requeue: queued.is_some(),
            },
        })
    }

    #[test]
    fn every_action_on_every_status_follows_the_table() {
        let actions = [
            PlanAction::Approve,
            PlanAction::Cancel,
            PlanAction::Retry,
            PlanAction::Revert,
        ];
        let mut n = 0;
        for a in actions {
            for phase in PHASES {
                for state in STATES {
                    for queued in [None, Some(false), Some(true)] {
                        let s = Status::new(phase, state);
                        assert_eq!(
                            decide(a, s, queued),
                            expected(a, s, queued),
                            "{a} {s} {queued:?}"
                        );
                        n += 1;
                    }
                }
            }
        }
        assert_eq!(n, 4 * PHASES.len() * STATES.len() * 3);
        let applied = Status::new(Phase::Apply, PlanState::Applied);
        assert_eq!(
            decide(PlanAction::Approve, applied, Some(false)),
            Err(Refusal::Finished)
        );
    }
}
