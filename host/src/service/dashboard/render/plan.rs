//! The plan page: facts, the buttons its status and the viewer's scope
//! allow, the diff, the proposal and the state timeline (events, worker
//! attempts, rescues). Everything below the title is the live part
//! ([`plan_live`]), which the page's event stream swaps in whenever the
//! plan changes.

use maud::{html, Markup};

use super::{csrf_field, file_diffs, page, status_badge, text, when, Nav, Notice, Viewer};
use crate::fleet::{Attempt, QueueEntry};
use crate::lifecycle::{transition, Command};
use crate::model::{EventRecord, Phase, PlanRecord, State};
use crate::workspace::FileDiff;

/// What the plan page shows.
#[derive(Debug, Clone, Copy)]
pub struct PlanPage<'a> {
    /// The plan.
    pub plan: &'a PlanRecord,
    /// Its history, oldest first.
    pub events: &'a [EventRecord],
    /// Worker attempts at its phases, oldest first.
    pub attempts: &'a [Attempt],
    /// Its queue entry, if it was submitted as queued work.
    pub queue: Option<&'a QueueEntry>,
    /// The changeset's diff, per file.
    pub diffs: &'a [FileDiff],
}

/// Which plan actions apply to a plan now (its status and queue entry),
/// before the viewer's scope is taken into account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Buttons {
    /// Approve the apply.
    pub approve: bool,
    /// Cancel.
    pub cancel: bool,
    /// Retry the errored phase.
    pub retry: bool,
    /// Revert to strategize (discard the changeset).
    pub revert: bool,
}

impl Buttons {
    /// The actions the lifecycle's transition table allows from the plan's
    /// status; approve only for an executed plan not yet approved.
    pub fn for_plan(plan: &PlanRecord, queue: Option<&QueueEntry>) -> Self {
        let allows = |c| transition(Some(plan.status), c).is_ok();
        let waiting = queue.is_none_or(|q| !q.approved && !q.auto_apply && !q.done);
        Buttons {
            approve: plan.status.phase == Phase::Execute
                && plan.status.state == State::Complete
                && waiting,
            cancel: allows(Command::Cancel) && queue.is_none_or(|q| !q.cancel_requested),
            retry: plan.status.state == State::Errored && allows(Command::Retry),
            revert: allows(Command::Revert),
        }
    }
}

/// The plan page, connected to its event stream.
pub fn plan_page(viewer: &Viewer, notice: Option<&Notice>, p: &PlanPage<'_>) -> Markup {
    let id = &p.plan.id;
    let body = html! {
        h1 { "Plan " code { (id) } }
        div hx-ext="sse" sse-connect={ "/ui/plans/" (id) "/live" } {
            div id="live" sse-swap="plan" { (plan_live(viewer, p)) }
        }
    };
    page(
        &format!("Plan {id}"),
        Some(Nav::Plans),
        Some(viewer),
        notice,
        body,
    )
}

/// The part of the plan page that changes: status, buttons, timeline,
/// proposal, diff.
pub fn plan_live(viewer: &Viewer, p: &PlanPage<'_>) -> Markup {
    plan_live_with(viewer, None, p)
}

/// [`plan_live`] headed by a notice (the outcome of a button).
pub fn plan_live_with(viewer: &Viewer, notice: Option<&Notice>, p: &PlanPage<'_>) -> Markup {
    let plan = p.plan;
    html! {
        @if let Some(n) = notice {
            div class=(if n.error { "notice error" } else { "notice" }) role="status" id="action-notice" {
                (text(&n.text))
            }
        }
        section.card {
            dl.facts {
                dt { "Status" } dd id="plan-status" { (status_badge(plan.status)) }
                dt { "Action" } dd { (text(&plan.action.name)) }
                dt { "Plugins" } dd.mono { (text(&plan.action.strategy)) " → " (text(&plan.action.executor)) }
                dt { "Project" } dd.mono { (text(&plan.project_root)) }
                @if let Some(q) = p.queue {
                    dt { "Queue" } dd { (text(&q.queue)) ", attempt " (q.attempts) " of " (q.max_attempts)
                        @if q.approved { ", approved" } @if q.auto_apply { ", applies without approval" } }
                }
                @if let Some(e) = &plan.error {
                    dt { "Error" } dd.error { (text(e)) }
                }
                dt { "Updated" } dd.muted { (when(plan.updated_at)) ", version " (plan.version) }
            }
            (buttons(viewer, plan, p.queue))
        }
        h2 { "Changes" }
        (file_diffs(p.diffs))
        h2 { "Proposal" }
        section.card { (proposal(plan)) }
        h2 { "Timeline" }
        section.card { (timeline(p.events, p.attempts)) }
    }
}

fn buttons(viewer: &Viewer, plan: &PlanRecord, queue: Option<&QueueEntry>) -> Markup {
    if !viewer.can_operate {
        return html! { p.muted { "Read-only: your token's scope does not allow plan actions." } };
    }
    let b = Buttons::for_plan(plan, queue);
    let shown = [
        (b.approve, "approve", "Approve", "primary"),
        (b.retry, "retry", "Retry", ""),
        (b.revert, "revert", "Revert", ""),
        (b.cancel, "cancel", "Cancel", "danger"),
    ];
    html! {
        div.actions {
            @for (on, action, label, class) in shown {
                @if on {
                    @let url = format!("/ui/plans/{}/{action}", plan.id);
                    form.inline method="post" action=(url) hx-post=(url) hx-target="#live" hx-swap="innerHTML" {
                        (csrf_field(viewer))
                        button type="submit" class=(class) id={ "btn-" (action) } { (label) }
                    }
                }
            }
        }
    }
}

fn timeline(events: &[EventRecord], attempts: &[Attempt]) -> Markup {
    enum Item<'a> {
        Event(&'a EventRecord),
        Attempt(&'a Attempt),
    }
    let mut items: Vec<(i64, Item<'_>)> = events.iter().map(|e| (e.at, Item::Event(e))).collect();
    items.extend(attempts.iter().map(|a| (a.started_at, Item::Attempt(a))));
    items.sort_by_key(|(at, _)| *at);
    html! {
        ol.timeline {
            @for (at, item) in &items {
                @match item {
                    Item::Event(e) => li.event {
                        span.muted { (when(*at)) } " "
                        @if let Some(from) = e.from { (status_badge(from)) " → " }
                        (status_badge(e.to)) " "
                        (text(&e.reason))
                        " " span.muted { "by " (text(&e.actor)) }
                    },
                    Item::Attempt(a) => li class=(attempt_class(a)) {
                        span.muted { (when(*at)) } " "
                        (text(&a.phase)) " attempt by worker " code { (text(&a.worker)) }
                        " (token " (a.token) ")"
                        @if let Some(o) = &a.outcome { ": " b { (text(o)) } }
                        @if let Some(e) = &a.error { " — " (text(e)) }
                    },
                }
            }
        }
    }
}

/// An attempt a worker lost (and another rescued) is marked as a rescue.
fn attempt_class(a: &Attempt) -> &'static str {
    match a.outcome.as_deref() {
        Some("lost" | "interrupted" | "rescued") => "attempt rescue",
        _ => "attempt",
    }
}

fn proposal(plan: &PlanRecord) -> Markup {
    let Some(p) = &plan.proposal else {
        return html! { p.muted { "Not strategized yet." } };
    };
    html! {
        p.summary id="proposal-summary" { (text(&p.summary)) }
        ol.steps {
            @for s in &p.steps {
                li {
                    code { (text(&s.id)) } " " (text(&s.title))
                    @if !s.targets.is_empty() {
                        " " span.muted { "(" (s.targets.iter().map(|t| text(t)).collect::<Vec<_>>().join(", ")) ")" }
                    }
                }
            }
        }
    }
}
