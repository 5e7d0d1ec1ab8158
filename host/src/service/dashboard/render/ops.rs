//! The operator's pages: locks (with force-release and a reason), workers,
//! projects, and the login page.

use maud::{html, Markup};

use super::{csrf_field, page, text, when, Nav, Notice, Viewer};
use crate::fleet::WorkerInfo;
use crate::locks::LockInfo;

/// A registered project and its plans.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjectRow {
    /// The project's id.
    pub id: String,
    /// Its canonical root.
    pub root: String,
    /// Plans on it.
    pub plans: usize,
    /// Plans on it not yet applied or cancelled.
    pub active: usize,
}

/// The locks page: every lease, stale ones marked; admins can
/// force-release one, giving a reason.
pub fn locks_page(viewer: &Viewer, notice: Option<&Notice>, locks: &[LockInfo]) -> Markup {
    let body = html! {
        h1 { "Locks" }
        table.locks {
            thead { tr {
                th { "Resource" } th { "Holder" } th { "Operation" } th { "Token" }
                th { "Acquired" } th { "Expires" }
                @if viewer.can_admin { th { "Force-release" } }
            } }
            tbody {
                @if locks.is_empty() { tr { td colspan="7" class="muted" { "No locks are held." } } }
                @for l in locks {
                    tr data-resource=(l.resource) {
                        td.mono { (text(&l.resource)) }
                        td { (text(&l.holder.user)) "@" (text(&l.holder.host)) " pid " (l.holder.pid)
                             br; span.muted.mono { (text(&l.owner)) } }
                        td { (text(&l.operation)) }
                        td.mono { (l.token) }
                        td.muted { (when(l.acquired_at)) }
                        td { (when(l.expires_at)) @if l.stale { " " span.state.state-errored { "stale" } } }
                        @if viewer.can_admin {
                            td {
                                form.inline method="post" action="/ui/locks/release" {
                                    (csrf_field(viewer))
                                    input type="hidden" name="resource" value=(l.resource);
                                    input type="text" name="reason" required placeholder="reason" aria-label="reason";
                                    " "
                                    button type="submit" class="danger" { "Release" }
                                }
                            }
                        }
                    }
                }
            }
        }
        @if !viewer.can_admin {
            p.muted { "Force-release needs the admin scope." }
        }
    };
    page("Locks", Some(Nav::Locks), Some(viewer), notice, body)
}

/// The workers page: every registered worker and its heartbeat.
pub fn workers_page(viewer: &Viewer, workers: &[WorkerInfo]) -> Markup {
    let body = html! {
        h1 { "Workers" }
        table.workers {
            thead { tr {
                th { "Worker" } th { "State" } th { "Queues" } th { "Running" }
                th { "Version" } th { "Started" } th { "Last heartbeat" }
            } }
            tbody {
                @if workers.is_empty() { tr { td colspan="7" class="muted" { "No worker has registered." } } }
                @for w in workers {
                    tr {
                        td.mono { (text(&w.id)) }
                        td { span class={ "state " (worker_class(&w.state)) } { (text(&w.state)) } }
                        td { (text(&w.queues)) }
                        td { (w.running) " of " (w.concurrency) }
                        td { (text(&w.version)) }
                        td.muted { (when(w.started_at)) }
                        td { (when(w.heartbeat_at)) }
                    }
                }
            }
        }
    };
    page("Workers", Some(Nav::Workers), Some(viewer), None, body)
}

fn worker_class(state: &str) -> &'static str {
    match state {
        "busy" => "state-processing",
        "idle" => "state-applied",
        "lost" => "state-errored",
        _ => "state-cancelled",
    }
}

/// The projects page: registered projects and their plans.
pub fn projects_page(viewer: &Viewer, projects: &[ProjectRow]) -> Markup {
    let body = html! {
        h1 { "Projects" }
        table.projects {
            thead { tr { th { "Project" } th { "Root" } th { "Plans" } th { "Active" } } }
            tbody {
                @if projects.is_empty() { tr { td colspan="4" class="muted" { "No project is registered (lockstep projects add PATH)." } } }
                @for p in projects {
                    tr {
                        td.mono { (text(&p.id)) }
                        td.mono {
                            a href={ "/ui/plans?" (form_urlencoded::Serializer::new(String::new()).append_pair("project", &p.id).finish()) } { (text(&p.root)) }
                        }
                        td { (p.plans) }
                        td { (p.active) }
                    }
                }
            }
        }
    };
    page("Projects", Some(Nav::Projects), Some(viewer), None, body)
}

/// The login page: a form posting an API token to `/login`, which sets the
/// session cookie and goes on to `next` (a path on this server).
pub fn login_page(next: &str, notice: Option<&Notice>) -> Markup {
    let body = html! {
        section.card.login {
            h1 { "Sign in" }
            form method="post" action="/login" {
                label for="token" { "API token" }
                input type="password" id="token" name="token" autocomplete="off" required autofocus;
                input type="hidden" name="next" value=(next);
                button type="submit" class="primary" { "Sign in" }
            }
            p.muted { "Create a token with " code { "lockstep tokens create --scope read|operate|admin --name NAME" } "." }
        }
    };
    page("Sign in", None, None, notice, body)
}
