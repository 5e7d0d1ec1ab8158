//! The dashboard's routes, merged into the service's router by
//! [`super::super::router_with`]: pages authenticate with the session
//! cookie (a browser without one is sent to `/login`), every form carries
//! the session's CSRF token (the service's guard checks it), and each
//! action is allowed by the caller's scope, not by whether its button was
//! shown. Plan actions go through the same code as the API's.

use std::collections::HashMap;
use std::convert::Infallible;

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use futures::{Stream, StreamExt};
use maud::Markup;

use super::assets;
use super::render::{self, BulkConfirm, Notice, PlanPage, PlansPage, ProjectRow, Viewer};
use crate::fleet;
use crate::model::{PlanRecord, State as PlanState};
use crate::service::actions::{self, act, PlanAction};
use crate::service::auth::{CanAdmin, CanOperate, CanRead, Principal, Scope};
use crate::service::ops::{self, Released};
use crate::service::{event_stream, login, plans, projects, ApiError, AppState};
use crate::store::PlanFilter;
use crate::workspace::{change_diff, FileDiff};

/// Most plans a page of the plans page lists.
const PLANS_SHOWN: usize = 200;

/// The dashboard's routes: `/` (to the plans page), `/login`, `/ui/…`.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(|| async { Redirect::to("/ui/plans") }))
        .route("/login", get(login_form))
        .route("/ui/assets/{*path}", get(asset))
        .route("/ui/plans", get(plans))
        .route("/ui/plans/bulk", post(bulk))
        .route("/ui/plans/{id}", get(plan))
        .route("/ui/plans/{id}/live", get(live))
        .route("/ui/plans/{id}/{action}", post(plan_action))
        .route("/ui/locks", get(locks))
        .route("/ui/locks/release", post(release))
        .route("/ui/workers", get(workers))
        .route("/ui/projects", get(projects_page))
        .layer(axum::middleware::map_response(secure_headers))
}

/// The CSP and its companions on every dashboard response.
async fn secure_headers(mut response: Response) -> Response {
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(assets::CONTENT_SECURITY_POLICY),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    response
}

fn viewer(p: &Principal) -> Viewer {
    Viewer {
        name: p.who.clone(),
        can_operate: p.scope >= Scope::Operate,
        can_admin: p.scope >= Scope::Admin,
        csrf: p.csrf_token().unwrap_or_default().to_string(),
    }
}

fn html(m: Markup) -> Response {
    ([(header::CACHE_CONTROL, "no-store")], Html(m.into_string())).into_response()
}

fn notice(text: impl Into<String>, error: bool) -> Option<Notice> {
    Some(Notice {
        text: text.into(),
        error,
    })
}

async fn login_form(Query(q): Query<HashMap<String, String>>) -> Response {
    let next = login::local_path(q.get("next").map(String::as_str));
    let failed = q.contains_key("failed");
    let n = failed.then(|| Notice {
        text: "That token was not accepted.".into(),
        error: true,
    });
    html(render::login_page(&next, n.as_ref()))
}

async fn asset(Path(path): Path<String>) -> Response {
    match assets::get(&path) {
        Some((bytes, mime)) => (
            [
                (header::CONTENT_TYPE, mime),
                (header::CACHE_CONTROL, "public, max-age=86400"),
            ],
            bytes.into_owned(),
        )
            .into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

/// `?state=&project=&cursor=` of the plans page (empty values mean "any";
/// `cursor`: the page after that position).
#[derive(Debug, Default, serde::Deserialize)]
struct PlansQuery {
    #[serde(default)]
    state: Option<String>,
    #[serde(default)]
    project: Option<String>,
    #[serde(default)]
    cursor: Option<String>,
}

/// A value left empty means "any".
fn given(v: &Option<String>) -> Option<String> {
    v.as_deref()
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_string)
}

/// The plans page's filters, checked as the API checks them (a project by
/// id or registered path).
struct Filters {
    state: Option<PlanState>,
    store: PlanFilter,
}

impl Filters {
    async fn read(state: &AppState, q: &PlansQuery) -> Result<Filters, ApiError> {
        let st = given(&q.state);
        let store = plans::filter(state, None, st.clone(), given(&q.project)).await?;
        let state = st
            .map(|s| s.parse().map_err(|e| ApiError::bad_request(format!("{e}"))))
            .transpose()?;
        Ok(Filters { state, store })
    }

    fn project(&self) -> Option<&str> {
        self.store.project_id.as_deref()
    }

    /// Plans per state over the project filter, and how many match both
    /// filters.
    async fn counts(&self, state: &AppState) -> Result<(Vec<(PlanState, usize)>, usize), ApiError> {
        let counts = state
            .container()
            .store()
            .plan_counts(self.project())
            .await?;
        let matching = counts
            .iter()
            .filter(|(s, _)| self.state.is_none_or(|want| *s == want))
            .map(|(_, n)| n)
            .sum();
        Ok((counts, matching))
    }
}

/// Plans per page: [`PLANS_SHOWN`], or the server's page cap if lower.
fn plans_per_page(state: &AppState) -> usize {
    PLANS_SHOWN.min(state.config().max_page_size).max(1)
}

async fn plans(
    CanRead(who): CanRead,
    State(state): State<AppState>,
    Query(q): Query<PlansQuery>,
) -> Result<Response, ApiError> {
    plans_response(&state, &who, &q, None).await
}

async fn plans_response(
    state: &AppState,
    who: &Principal,
    q: &PlansQuery,
    n: Option<Notice>,
) -> Result<Response, ApiError> {
    let f = Filters::read(state, q).await?;
    let after = given(&q.cursor)
        .as_deref()
        .map(plans::decode_cursor)
        .transpose()?;
    let store = state.container().store();
    let paged = after.is_some();
    let page = store
        .plans_page(&f.store, after, plans_per_page(state))
        .await?;
    let (counts, matching) = f.counts(state).await?;
    let projects = store.plan_projects().await?;
    let older = page.next.as_ref().map(plans::encode_cursor);
    let page = PlansPage {
        plans: &page.plans,
        matching,
        counts: &counts,
        state: f.state,
        project: f.project(),
        projects: &projects,
        older: older.as_deref(),
        paged,
    };
    Ok(html(render::plans_page(&viewer(who), n.as_ref(), &page)))
}

/// The plan actions a form names.
fn plan_action_named(name: &str) -> Result<PlanAction, ApiError> {
    match name {
        "approve" => Ok(PlanAction::Approve),
        "cancel" => Ok(PlanAction::Cancel),
        "retry" => Ok(PlanAction::Retry),
        "revert" => Ok(PlanAction::Revert),
        other => Err(ApiError::bad_request(format!(
            "unknown plan action `{}` (approve, cancel, retry, revert)",
            crate::visible::line(other)
        ))),
    }
}

/// Most refusals a bulk action's notice names one by one.
const REFUSALS_NAMED: usize = 10;

/// The bulk form: `action`, and `which` plans — `ticked` (the `id` fields)
/// or `matching` (every plan matching `state` and `project`, asked to be
/// confirmed first: `confirm=yes`).
async fn bulk(
    CanOperate(who): CanOperate,
    State(state): State<AppState>,
    Form(fields): Form<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    let field = |name: &str| {
        fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or_default()
    };
    let action = plan_action_named(field("action"))?;
    let q = PlansQuery {
        state: Some(field("state").to_string()),
        project: Some(field("project").to_string()),
        cursor: None,
    };
    let (ids, what) = if field("which") == "matching" {
        let f = Filters::read(&state, &q).await?;
        if field("confirm") != "yes" {
            let (_, matching) = f.counts(&state).await?;
            let projects = state.container().store().plan_projects().await?;
            let root = f
                .project()
                .and_then(|id| projects.iter().find(|p| p.id == id))
                .map(|p| p.root.as_str());
            let action = action.to_string();
            let confirm = BulkConfirm {
                action: &action,
                matching,
                limit: actions::BULK_MAX,
                state: f.state,
                project: f.project(),
                project_root: root,
            };
            return Ok(html(render::bulk_confirm_page(&viewer(&who), &confirm)));
        }
        (actions::matching_ids(&state, &f.store).await?, "matching")
    } else {
        let ids = fields
            .iter()
            .filter(|(k, _)| k == "id")
            .map(|(_, v)| v.clone())
            .take(actions::BULK_MAX)
            .collect();
        (ids, "selected")
    };
    let taken = ids.len();
    let result = actions::act_on_each(&state, &who, ids, action).await;
    let text = bulk_notice(action, &result, taken, what);
    plans_response(&state, &who, &q, notice(text, result.failed > 0)).await
}

/// What a bulk action did: "cancel: 2 of 3 selected plans; refused — …",
/// naming at most [`REFUSALS_NAMED`] refusals.
fn bulk_notice(
    action: PlanAction,
    result: &actions::BulkResult,
    taken: usize,
    what: &str,
) -> String {
    let mut text = format!("{action}: {} of {taken} {what} plans", result.succeeded);
    if result.failed > 0 {
        let named: Vec<String> = result
            .items
            .iter()
            .filter_map(|i| Some((i, i.error.as_ref()?)))
            .take(REFUSALS_NAMED)
            .map(|(i, e)| format!("{}: {}", i.plan_id, e.detail))
            .collect();
        text.push_str(&format!("; refused — {}", named.join("; ")));
        if result.failed > named.len() {
            text.push_str(&format!(" and {} more", result.failed - named.len()));
        }
    }
    text
}

/// Everything the plan page shows, read from the store and the fleet.
struct PlanData {
    plan: PlanRecord,
    events: Vec<crate::model::EventRecord>,
    attempts: Vec<fleet::Attempt>,
    queue: Option<fleet::QueueEntry>,
    diffs: Vec<FileDiff>,
}

impl PlanData {
    async fn load(state: &AppState, id: &str) -> Result<PlanData, ApiError> {
        let c = state.container();
        let plan = c.store().plan(id).await?;
        let queue = plans::queue_entry(c, id).await?;
        let attempts = if queue.is_some() {
            fleet::attempts(c, id).await?
        } else {
            Vec::new()
        };
        let diffs = c
            .store()
            .changes(id)
            .await?
            .iter()
            .map(change_diff)
            .collect();
        Ok(PlanData {
            events: c.store().events(id).await?,
            plan,
            attempts,
            queue,
            diffs,
        })
    }

    fn page(&self) -> PlanPage<'_> {
        PlanPage {
            plan: &self.plan,
            events: &self.events,
            attempts: &self.attempts,
            queue: self.queue.as_ref(),
            diffs: &self.diffs,
        }
    }
}

async fn plan(
    CanRead(who): CanRead,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let data = PlanData::load(&state, &id).await?;
    Ok(html(render::plan_page(&viewer(&who), None, &data.page())))
}

async fn plan_action(
    CanOperate(who): CanOperate,
    State(state): State<AppState>,
    Path((id, action)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let action = plan_action_named(&action)?;
    let n = match act(&state, &who, &id, action).await {
        Ok(r) => notice(format!("{action}: {} (now {})", r.result, r.status), false),
        Err(e) => notice(format!("{action} refused: {e}"), true),
    };
    let data = PlanData::load(&state, &id).await?;
    let v = viewer(&who);
    if headers.contains_key("hx-request") {
        return Ok(html(render::plan_live_with(&v, n.as_ref(), &data.page())));
    }
    Ok(html(render::plan_page(&v, n.as_ref(), &data.page())))
}

/// The plan page's event stream: the live part of the page, rendered
/// again after each of the plan's events (`event: plan`), until the client
/// leaves or the server stops.
async fn live(
    CanRead(who): CanRead,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    state.container().store().plan(&id).await?;
    let after = state.container().store().last_event_id().await?;
    let v = viewer(&who);
    let stream = event_stream(&state, Some(id.clone()), after).then(move |_| {
        let (state, id, v) = (state.clone(), id.clone(), v.clone());
        async move {
            let event = match PlanData::load(&state, &id).await {
                Ok(data) => Event::default()
                    .event("plan")
                    .data(render::plan_live(&v, &data.page()).into_string()),
                Err(e) => Event::default().comment(format!("reading the plan failed: {e}")),
            };
            Ok(event)
        }
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

async fn locks(CanRead(who): CanRead, State(state): State<AppState>) -> Result<Response, ApiError> {
    let locks = state.container().locks().list().await?;
    Ok(html(render::locks_page(&viewer(&who), None, &locks)))
}

/// The force-release form.
#[derive(Debug, serde::Deserialize)]
struct ReleaseForm {
    resource: String,
    #[serde(default)]
    reason: String,
}

async fn release(
    CanAdmin(who): CanAdmin,
    State(state): State<AppState>,
    Form(f): Form<ReleaseForm>,
) -> Result<Response, ApiError> {
    let n = match ops::force_release(&state, &who, &f.resource, &f.reason).await {
        Ok(Released {
            owner: Some(owner),
            token: Some(token),
            ..
        }) => notice(
            format!("released {} (owner {owner}, token {token})", f.resource),
            false,
        ),
        Ok(_) => notice(format!("{} was not held", f.resource), false),
        Err(e) => notice(format!("force-release refused: {e}"), true),
    };
    let locks = state.container().locks().list().await?;
    Ok(html(render::locks_page(&viewer(&who), n.as_ref(), &locks)))
}

async fn workers(
    CanRead(who): CanRead,
    State(state): State<AppState>,
) -> Result<Response, ApiError> {
    let workers = fleet::workers(state.container()).await?;
    Ok(html(render::workers_page(&viewer(&who), &workers)))
}

async fn projects_page(
    CanRead(who): CanRead,
    State(state): State<AppState>,
) -> Result<Response, ApiError> {
    let c = state.container();
    let counts = c.store().plans_per_project().await?;
    let rows: Vec<ProjectRow> = projects::list(c)
        .await?
        .into_iter()
        .map(|p| {
            let n = counts.iter().find(|n| n.project_id == p.id);
            ProjectRow {
                plans: n.map_or(0, |n| n.plans),
                active: n.map_or(0, |n| n.active),
                id: p.id,
                root: p.path,
            }
        })
        .collect();
    Ok(html(render::projects_page(&viewer(&who), &rows)))
}
