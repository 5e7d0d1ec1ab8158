//! The plans page: counts per state, filters by state and project, one
//! page of the matching plans with a link to older ones, and bulk approve /
//! cancel / retry of the ticked plans or of every matching plan (after a
//! confirmation).

use maud::{html, Markup};

use super::{csrf_field, page, status_badge, text, when, Nav, Notice, Viewer};
use crate::model::{PlanRecord, State, STATES};
use crate::store::PlanProject;

/// What the plans page shows.
#[derive(Debug, Clone, Copy)]
pub struct PlansPage<'a> {
    /// One page of the plans matching the filters, newest first.
    pub plans: &'a [PlanRecord],
    /// How many plans match the filters (may exceed `plans.len()`).
    pub matching: usize,
    /// Plans per state, over the project filter only.
    pub counts: &'a [(State, usize)],
    /// The state filter.
    pub state: Option<State>,
    /// The project filter (a project id).
    pub project: Option<&'a str>,
    /// The projects to filter by.
    pub projects: &'a [PlanProject],
    /// The cursor of the next (older) page, when there is one.
    pub older: Option<&'a str>,
    /// Whether this page came after a cursor (not the newest page).
    pub paged: bool,
}

/// The plans page's address with these filters (and a page's cursor).
fn plans_url(state: Option<State>, project: Option<&str>, cursor: Option<&str>) -> String {
    let mut q = form_urlencoded::Serializer::new(String::new());
    if let Some(s) = state {
        q.append_pair("state", &s.to_string());
    }
    if let Some(p) = project {
        q.append_pair("project", p);
    }
    if let Some(c) = cursor {
        q.append_pair("cursor", c);
    }
    let q = q.finish();
    if q.is_empty() {
        "/ui/plans".into()
    } else {
        format!("/ui/plans?{q}")
    }
}

fn filter_url(state: Option<State>, project: Option<&str>) -> String {
    plans_url(state, project, None)
}

/// The filters as hidden fields, so a form's action keeps to them.
fn filter_fields(state: Option<State>, project: Option<&str>) -> Markup {
    html! {
        @if let Some(s) = state { input type="hidden" name="state" value=(s); }
        @if let Some(p) = project { input type="hidden" name="project" value=(p); }
    }
}

/// The plans page.
pub fn plans_page(viewer: &Viewer, notice: Option<&Notice>, p: &PlansPage<'_>) -> Markup {
    let body = html! {
        h1 { "Plans" }
        (counts(p))
        (filters(p))
        form method="post" action="/ui/plans/bulk" {
            (csrf_field(viewer))
            (filter_fields(p.state, p.project))
            @if viewer.can_operate {
                div.bulk {
                    label for="bulk-which" { "Act on" }
                    select id="bulk-which" name="which" {
                        option value="ticked" selected { "the ticked plans" }
                        @if p.matching > 0 {
                            option value="matching" { "all " (p.matching) " matching plans" }
                        }
                    }
                    button type="submit" name="action" value="approve" { "Approve" }
                    button type="submit" name="action" value="cancel" class="danger" { "Cancel" }
                    button type="submit" name="action" value="retry" { "Retry" }
                }
            }
            (table(viewer, p.plans))
        }
        p.paging.muted id="paging" {
            (p.matching) " matching " (if p.matching == 1 { "plan" } else { "plans" })
            @if p.paged || p.older.is_some() {
                "; this page shows " (p.plans.len()) ", newest first."
            }
            @if p.paged {
                " " a href=(filter_url(p.state, p.project)) id="page-newest" { "Newest" }
            }
            @if let Some(c) = p.older {
                " " a href=(plans_url(p.state, p.project, Some(c))) id="page-older" rel="next" { "Older" }
            }
        }
    };
    page("Plans", Some(Nav::Plans), Some(viewer), notice, body)
}

/// What the confirmation of a bulk action on every matching plan shows.
#[derive(Debug, Clone, Copy)]
pub struct BulkConfirm<'a> {
    /// The action's name (`approve`, `cancel`, `retry`).
    pub action: &'a str,
    /// How many plans match now.
    pub matching: usize,
    /// Most plans one bulk action takes.
    pub limit: usize,
    /// The state filter.
    pub state: Option<State>,
    /// The project filter (a project id).
    pub project: Option<&'a str>,
    /// The project's root, to show.
    pub project_root: Option<&'a str>,
}

/// The page that asks before a bulk action on every matching plan.
pub fn bulk_confirm_page(viewer: &Viewer, c: &BulkConfirm<'_>) -> Markup {
    let taken = c.matching.min(c.limit);
    let body = html! {
        h1 { "Confirm" }
        p id="bulk-confirm" {
            (c.action) " " b { (c.matching) } " "
            (if c.matching == 1 { "plan" } else { "plans" })
            @match (c.state, c.project) {
                (None, None) => { " (every plan)" }
                (state, project) => {
                    " matching"
                    @if let Some(s) = state { " state " b { (s) } }
                    @if let (Some(id), root) = (project, c.project_root) {
                        " project " b.mono { (text(root.unwrap_or(id))) }
                    }
                }
            }
            "?"
        }
        @if c.matching > c.limit {
            p.muted {
                "At most " (c.limit) " plans are taken at a time: the newest " (c.limit)
                " now; confirm again for the rest."
            }
        }
        p.muted { "Plans that match when you confirm are taken; each succeeds or is refused on its own." }
        form method="post" action="/ui/plans/bulk" {
            (csrf_field(viewer))
            (filter_fields(c.state, c.project))
            input type="hidden" name="which" value="matching";
            input type="hidden" name="confirm" value="yes";
            button type="submit" name="action" value=(c.action) id="bulk-confirm-btn"
                class=[(c.action == "cancel").then_some("danger")] {
                (c.action) " " (taken) " " (if taken == 1 { "plan" } else { "plans" })
            }
            " "
            a href=(filter_url(c.state, c.project)) { "Back" }
        }
    };
    page("Confirm", Some(Nav::Plans), Some(viewer), None, body)
}

fn counts(p: &PlansPage<'_>) -> Markup {
    html! {
        div.counts {
            a href=(filter_url(None, p.project)) {
                span class={ "count" @if p.state.is_none() { " active" } } {
                    b { (p.counts.iter().map(|(_, n)| n).sum::<usize>()) } "all"
                }
            }
            @for s in STATES {
                @let n = p.counts.iter().find(|(st, _)| *st == s).map_or(0, |(_, n)| *n);
                a href=(filter_url(Some(s), p.project)) {
                    span class={ "count" @if p.state == Some(s) { " active" } } data-state=(s) {
                        b { (n) } (s)
                    }
                }
            }
        }
    }
}

fn filters(p: &PlansPage<'_>) -> Markup {
    html! {
        form.filters method="get" action="/ui/plans" {
            div {
                label for="f-state" { "State" }
                select id="f-state" name="state" {
                    option value="" { "any" }
                    @for s in STATES {
                        option value=(s) selected[p.state == Some(s)] { (s) }
                    }
                }
            }
            div {
                label for="f-project" { "Project" }
                select id="f-project" name="project" {
                    option value="" { "any" }
                    @for project in p.projects {
                        option value=(project.id) selected[p.project == Some(project.id.as_str())] { (text(&project.root)) }
                    }
                }
            }
            button type="submit" { "Filter" }
        }
    }
}

fn table(viewer: &Viewer, plans: &[PlanRecord]) -> Markup {
    html! {
        table.plans {
            thead { tr {
                @if viewer.can_operate { th { "" } }
                th { "Plan" } th { "Action" } th { "Status" } th { "Project" } th { "Updated" }
            } }
            tbody {
                @if plans.is_empty() {
                    tr { td colspan="6" class="muted" { "No plans match." } }
                }
                @for plan in plans {
                    tr data-plan=(plan.id) {
                        @if viewer.can_operate {
                            td { input type="checkbox" name="id" value=(plan.id) aria-label={ "select " (plan.id) }; }
                        }
                        td { a.mono href={ "/ui/plans/" (plan.id) } { (plan.id) } }
                        td { (text(&plan.action.name)) }
                        td { (status_badge(plan.status)) }
                        td.mono { (text(&plan.project_root)) }
                        td.muted { (when(plan.updated_at)) }
                    }
                }
            }
        }
    }
}
