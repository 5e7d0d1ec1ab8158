//! Plan routes: submit, list (filters, cursor pagination), get, diff,
//! events (a page after an id, or a live stream). Actions on plans are in
//! [`super::actions`].

use std::collections::BTreeMap;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use super::auth::{CanOperate, CanRead};
use super::error::ApiError;
use super::{actions, events, projects, AppState};
use crate::fleet::{self, Attempt, QueueEntry, Submission};
use crate::model::{PlanRecord, StepResult};
use crate::store::{EventEntry, PlanFilter};
use crate::Container;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/plans", post(submit).get(list))
        .route("/api/v1/plans/{id}", get(show))
        .route("/api/v1/plans/{id}/diff", get(diff))
        .route("/api/v1/plans/{id}/events", get(events_page))
        .route("/api/v1/plans/{id}/events/stream", get(plan_stream))
        .route("/api/v1/events/stream", get(all_stream))
        .merge(actions::routes())
}

/// The action of a submission: the fields of an action file.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ActionBody {
    /// The action's name.
    pub name: String,
    /// The strategist plugin.
    pub strategy: String,
    /// The executor plugin.
    pub executor: String,
    /// String parameters for both plugins.
    #[serde(default)]
    pub params: BTreeMap<String, String>,
}

/// `POST /api/v1/plans`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubmitPlan {
    /// A registered project: its id or its registered path.
    pub project: String,
    /// What to do.
    pub action: ActionBody,
    /// The queue [default: `default`].
    #[serde(default)]
    pub queue: Option<String>,
    /// Higher runs first.
    #[serde(default)]
    pub priority: i64,
    /// Apply without waiting for approval.
    #[serde(default)]
    pub auto_apply: bool,
    /// Submitting again with the same key returns the first plan (also
    /// taken from the `Idempotency-Key` header).
    #[serde(default)]
    pub idempotency_key: Option<String>,
    /// Failed attempts per phase before the plan errors for good.
    #[serde(default)]
    pub max_attempts: Option<u32>,
}

/// The answer to a submission.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Submitted {
    /// The plan.
    pub plan_id: String,
    /// An earlier submission with the same key (nothing new was queued).
    pub existing: bool,
    /// The plan as stored.
    #[schema(value_type = Object)]
    pub plan: PlanRecord,
}

/// List filters and the page.
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
pub struct ListQuery {
    /// Only this phase (`strategize`, `execute`, `apply`).
    pub phase: Option<String>,
    /// Only this state (`queued`, `processing`, `complete`, `errored`,
    /// `applied`, `cancelled`).
    pub state: Option<String>,
    /// Only this project (id or registered path).
    pub project: Option<String>,
    /// Plans per page (capped by the server).
    pub limit: Option<usize>,
    /// `next_cursor` of the page before.
    pub cursor: Option<String>,
}

/// A page of plans, newest first.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PlanList {
    /// The plans.
    #[schema(value_type = Vec<Object>)]
    pub plans: Vec<PlanRecord>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// A plan with its queue entry, the attempts workers made and the steps'
/// summaries.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PlanDetail {
    /// The plan.
    #[schema(value_type = Object)]
    pub plan: PlanRecord,
    /// Its place in the queue (absent for plans not submitted).
    #[schema(value_type = Option<Object>)]
    pub queue: Option<QueueEntry>,
    /// Attempts at its phases, oldest first.
    #[schema(value_type = Vec<Object>)]
    pub attempts: Vec<Attempt>,
    /// What each executed step reported.
    #[schema(value_type = Vec<Object>)]
    pub steps: Vec<StepResult>,
}

/// One file of a plan's changeset.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct FileDiff {
    /// Project-relative path.
    pub path: String,
    /// `write` or `delete`.
    pub kind: String,
    /// Hash of the file when it was read (absent: a new file).
    pub base_hash: Option<String>,
    /// Hash of the new contents (writes).
    pub new_hash: Option<String>,
    /// A unified diff safe to show: control characters, line-ending
    /// changes and trailing whitespace made visible; binary files by size.
    pub diff: String,
}

/// A plan's changeset as diffs.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PlanDiff {
    /// The plan.
    pub plan_id: String,
    /// The files, in changeset order.
    pub files: Vec<FileDiff>,
}

/// `?after=` of event routes.
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
pub struct After {
    /// Only events with a higher id.
    pub after: Option<i64>,
    /// Events per page (capped by the server).
    pub limit: Option<usize>,
}

/// A page of events, oldest first.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct EventPage {
    /// The events.
    #[schema(value_type = Vec<Object>)]
    pub events: Vec<EventEntry>,
    /// The id to pass as `after` for what follows.
    pub last_id: i64,
}

/// The plan's queue entry, or `None` for a plan that was not submitted
/// (made by `plan new`).
pub(super) async fn queue_entry(c: &Container, id: &str) -> Result<Option<QueueEntry>, ApiError> {
    match fleet::entry(c, id).await {
        Ok(e) => Ok(Some(e)),
        Err(fleet::FleetError::NotQueued(_)) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// A page's position as the `cursor` parameter carries it.
pub(super) fn encode_cursor((at, id): &(i64, String)) -> String {
    format!("{at}.{id}")
}

/// The position a `cursor` parameter names (400 if it names none).
pub(super) fn decode_cursor(c: &str) -> Result<(i64, String), ApiError> {
    c.split_once('.')
        .and_then(|(at, id)| Some((at.parse().ok()?, id.to_string())))
        .ok_or_else(|| ApiError::bad_request(format!("invalid cursor `{c}`")))
}

/// Submit a plan on a registered project (operate). With an idempotency
/// key already used, the first plan is returned (200) instead of a new
/// one (201).
#[utoipa::path(post, path = "/api/v1/plans", tag = "plans", request_body = SubmitPlan,
    params(("Idempotency-Key" = Option<String>, Header, description = "same as `idempotency_key`")),
    responses((status = 201, body = Submitted), (status = 200, body = Submitted),
        (status = 422, body = super::Problem)),
    security(("bearer" = [])))]
pub(super) async fn submit(
    _: CanOperate,
    State(state): State<AppState>,
    headers: HeaderMap,
    Json(body): Json<SubmitPlan>,
) -> Result<impl IntoResponse, ApiError> {
    let project = projects::resolve(&state, &body.project).await?;
    let toml = toml::to_string(&body.action)
        .map_err(|e| ApiError::unprocessable(format!("invalid action: {e}")))?;
    let action = crate::lifecycle::parse_action(&toml)
        .map_err(|e| ApiError::unprocessable(format!("invalid action: {e}")))?;
    let header_key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let submission = Submission {
        queue: body
            .queue
            .unwrap_or_else(|| fleet::DEFAULT_QUEUE.to_string()),
        priority: body.priority,
        auto_apply: body.auto_apply,
        idempotency_key: body.idempotency_key.or(header_key),
        max_attempts: body.max_attempts.unwrap_or(fleet::DEFAULT_MAX_ATTEMPTS),
        ..Submission::new(action, project)
    };
    let done = fleet::submit(state.container(), submission).await?;
    let plan = state.container().store().plan(&done.plan_id).await?;
    let status = if done.existing {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((
        status,
        Json(Submitted {
            plan_id: done.plan_id,
            existing: done.existing,
            plan,
        }),
    ))
}

/// Plans, newest first, a page at a time.
#[utoipa::path(get, path = "/api/v1/plans", tag = "plans", params(ListQuery),
    responses((status = 200, body = PlanList)), security(("bearer" = [])))]
pub(super) async fn list(
    _: CanRead,
    State(state): State<AppState>,
    Query(q): Query<ListQuery>,
) -> Result<Json<PlanList>, ApiError> {
    let filter = filter(&state, q.phase, q.state, q.project).await?;
    let limit = page_size(&state, q.limit);
    let after = q.cursor.as_deref().map(decode_cursor).transpose()?;
    let page = state
        .container()
        .store()
        .plans_page(&filter, after, limit)
        .await?;
    Ok(Json(PlanList {
        plans: page.plans,
        next_cursor: page.next.as_ref().map(encode_cursor),
    }))
}

/// A page size within the server's cap (default 50).
pub(super) fn page_size(state: &AppState, asked: Option<usize>) -> usize {
    asked.unwrap_or(50).clamp(1, state.config().max_page_size)
}

/// The store's filter for list parameters (a project by id or path).
pub(super) async fn filter(
    state: &AppState,
    phase: Option<String>,
    st: Option<String>,
    project: Option<String>,
) -> Result<PlanFilter, ApiError> {
    if let Some(p) = &phase {
        p.parse::<crate::model::Phase>()
            .map_err(|e| ApiError::bad_request(e.to_string()))?;
    }
    if let Some(s) = &st {
        s.parse::<crate::model::State>()
            .map_err(|e| ApiError::bad_request(e.to_string()))?;
    }
    let project_id = match project {
        Some(p) => Some(
            projects::find(state.container(), &p)
                .await?
                .map_or(p, |found| found.id),
        ),
        None => None,
    };
    Ok(PlanFilter {
        phase,
        state: st,
        project_id,
    })
}

/// One plan with its queue entry, attempts and step summaries.
#[utoipa::path(get, path = "/api/v1/plans/{id}", tag = "plans",
    params(("id" = String, Path, description = "plan id")),
    responses((status = 200, body = PlanDetail), (status = 404, body = super::Problem)),
    security(("bearer" = [])))]
pub(super) async fn show(
    _: CanRead,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<PlanDetail>, ApiError> {
    let c = state.container();
    // Four independent reads, sent at once over the pool's connections.
    let (plan, queue, attempts, steps) = tokio::join!(
        c.store().plan(&id),
        queue_entry(c, &id),
        fleet::attempts(c, &id),
        c.store().step_results(&id),
    );
    let queue = queue?;
    Ok(Json(PlanDetail {
        plan: plan?,
        queue,
        attempts: attempts?,
        steps: steps?,
    }))
}

/// The plan's changeset as unified diffs (empty before Execute).
#[utoipa::path(get, path = "/api/v1/plans/{id}/diff", tag = "plans",
    params(("id" = String, Path, description = "plan id")),
    responses((status = 200, body = PlanDiff), (status = 404, body = super::Problem)),
    security(("bearer" = [])))]
pub(super) async fn diff(
    _: CanRead,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<PlanDiff>, ApiError> {
    let store = state.container().store();
    store.plan(&id).await?;
    let changes = store.changes(&id).await?;
    let files = tokio::task::spawn_blocking(move || {
        changes
            .into_iter()
            .map(|c| {
                let old = c.base_contents.as_deref().unwrap_or_default();
                let new = c.contents.as_deref().unwrap_or_default();
                let (from, to) = (format!("a/{}", c.path), format!("b/{}", c.path));
                FileDiff {
                    diff: crate::workspace::unified_diff(old, new, &from, &to),
                    kind: c.kind.to_string(),
                    path: crate::visible::line(&c.path).into_owned(),
                    base_hash: c.base_hash,
                    new_hash: c.new_hash,
                }
            })
            .collect()
    })
    .await
    .map_err(|e| ApiError::Conflict(format!("diff failed: {e}")))?;
    Ok(Json(PlanDiff { plan_id: id, files }))
}

/// The plan's events after `after`, oldest first.
#[utoipa::path(get, path = "/api/v1/plans/{id}/events", tag = "events",
    params(("id" = String, Path, description = "plan id"), After),
    responses((status = 200, body = EventPage), (status = 404, body = super::Problem)),
    security(("bearer" = [])))]
pub(super) async fn events_page(
    _: CanRead,
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<After>,
) -> Result<Json<EventPage>, ApiError> {
    let store = state.container().store();
    store.plan(&id).await?;
    let after = q.after.unwrap_or(0);
    let events = store
        .events_after(Some(&id), after, page_size(&state, q.limit))
        .await?;
    let last_id = events.last().map_or(after, |e| e.id);
    Ok(Json(EventPage { events, last_id }))
}

/// Where a stream starts: `Last-Event-ID` (a reconnecting client), else
/// `?after=`, else now-ish (the whole history of a plan; nothing old for
/// the stream of every plan).
fn resume_point(headers: &HeaderMap, after: Option<i64>) -> Option<i64> {
    headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
        .or(after)
}

/// The plan's events as server-sent events: its history after `after` (or
/// `Last-Event-ID`), then live.
#[utoipa::path(get, path = "/api/v1/plans/{id}/events/stream", tag = "events",
    params(("id" = String, Path, description = "plan id"), After,
        ("Last-Event-ID" = Option<String>, Header, description = "resume after this event")),
    responses((status = 200, description = "text/event-stream of `plan-event` messages", content_type = "text/event-stream")),
    security(("bearer" = [])))]
pub(super) async fn plan_stream(
    _: CanRead,
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Query(q): Query<After>,
) -> Result<impl IntoResponse, ApiError> {
    state.container().store().plan(&id).await?;
    let after = resume_point(&headers, q.after).unwrap_or(0);
    Ok(events::sse(&state, Some(id), after))
}

/// Every plan's events as server-sent events, from now (or after `after`
/// / `Last-Event-ID`).
#[utoipa::path(get, path = "/api/v1/events/stream", tag = "events",
    params(After, ("Last-Event-ID" = Option<String>, Header, description = "resume after this event")),
    responses((status = 200, description = "text/event-stream of `plan-event` messages", content_type = "text/event-stream")),
    security(("bearer" = [])))]
pub(super) async fn all_stream(
    _: CanRead,
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<After>,
) -> Result<impl IntoResponse, ApiError> {
    let after = match resume_point(&headers, q.after) {
        Some(a) => a,
        None => state.container().store().last_event_id().await?,
    };
    Ok(events::sse(&state, None, after))
}

#[cfg(test)]
mod tests {
    use super::{decode_cursor, encode_cursor};

    #[test]
    fn a_cursor_survives_the_round_trip_and_garbage_is_refused() {
        let c = (1_796_275_847_688, "4ae9a0b742d3".to_string());
        assert_eq!(decode_cursor(&encode_cursor(&c)).unwrap(), c);
        assert!(decode_cursor("zzz").is_err());
        assert!(decode_cursor("x.y").is_err());
    }
}
