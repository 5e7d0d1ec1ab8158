//! The plans page: counts per state, filters by state and project, the
//! list, and bulk approve / cancel / retry by checkbox.

use maud::{html, Markup};

use super::{csrf_field, page, status_badge, text, when, Nav, Notice, Viewer};
use crate::model::{PlanRecord, State, STATES};

/// What the plans page shows.
#[derive(Debug, Clone, Copy)]
pub struct PlansPage<'a> {
    /// The plans matching the filters, newest first (capped).
    pub plans: &'a [PlanRecord],
    /// How many plans match the filters (may exceed `plans.len()`).
    pub matching: usize,
    /// Plans per state, over the project filter only.
    pub counts: &'a [(State, usize)],
    /// The state filter.
    pub state: Option<State>,
    /// The project filter (a project root).
    pub project: Option<&'a str>,
    /// The project roots to filter by.
    pub projects: &'a [String],
}

fn filter_url(state: Option<State>, project: Option<&str>) -> String {
    let mut q = form_urlencoded::Serializer::new(String::new());
    if let Some(s) = state {
        q.append_pair("state", &s.to_string());
    }
    if let Some(p) = project {
        q.append_pair("project", p);
    }
    let q = q.finish();
    if q.is_empty() {
        "/ui/plans".into()
    } else {
        format!("/ui/plans?{q}")
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
            @if viewer.can_operate {
                div.bulk {
                    span.muted { "Selected:" }
                    button type="submit" name="action" value="approve" { "Approve" }
                    button type="submit" name="action" value="cancel" class="danger" { "Cancel" }
                    button type="submit" name="action" value="retry" { "Retry" }
                }
            }
            (table(viewer, p.plans))
        }
        @if p.matching > p.plans.len() {
            p.muted { "Showing the newest " (p.plans.len()) " of " (p.matching) " plans; narrow the filters to see others." }
        }
    };
    page("Plans", Some(Nav::Plans), Some(viewer), notice, body)
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
                    @for root in p.projects {
                        option value=(root) selected[p.project == Some(root.as_str())] { (text(root)) }
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
