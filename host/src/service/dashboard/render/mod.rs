//! Data in, HTML out: the dashboard's pages as pure functions, unit-tested
//! without a server. maud escapes every interpolated value; plugin- and
//! project-controlled strings also go through [`text`] so control and
//! invisible characters are shown, not hidden.

mod diff;
mod ops;
mod plan;
mod plans;

use maud::{html, Markup, DOCTYPE};

use super::assets;
use crate::model::Status;
use crate::visible;

pub use diff::{file_diff, file_diffs};
pub use ops::{locks_page, login_page, projects_page, workers_page, ProjectRow};
pub use plan::{plan_live, plan_live_with, plan_page, Buttons, PlanPage};
pub use plans::{bulk_confirm_page, plans_page, BulkConfirm, PlansPage};

/// Who is looking, and what they may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Viewer {
    /// The token's name (or the SSO user).
    pub name: String,
    /// May approve, cancel, retry, revert (scope `operate` or `admin`).
    pub can_operate: bool,
    /// May force-release locks and register projects (scope `admin`).
    pub can_admin: bool,
    /// The session's CSRF token, carried by every form.
    pub csrf: String,
}

/// A message at the top of a page (the outcome of a form).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    /// What happened.
    pub text: String,
    /// Whether it is a refusal or failure.
    pub error: bool,
}

/// The navigation entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nav {
    /// Plans.
    Plans,
    /// Locks.
    Locks,
    /// Workers.
    Workers,
    /// Projects.
    Projects,
}

/// The name of the form field (and the `X-CSRF-Token` header htmx sends).
pub const CSRF_FIELD: &str = "csrf_token";

/// htmx's settings: no inline indicator styles (the CSP forbids them), no
/// `eval`, no scripts from swapped content, requests to us only.
const HTMX_CONFIG: &str = r#"{"includeIndicatorStyles":false,"allowEval":false,"allowScriptTags":false,"selfRequestsOnly":true,"historyCacheSize":0}"#;

/// An untrusted one-line string made visible (then escaped by maud).
pub fn text(s: &str) -> String {
    visible::line(s).into_owned()
}

/// A time in ms since the epoch, as `YYYY-MM-DD HH:MM:SS UTC`.
pub fn when(ms: i64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms.max(0) as u64);
    let s = humantime::format_rfc3339_seconds(t).to_string();
    format!("{} UTC", s.trim_end_matches('Z').replacen('T', " ", 1))
}

fn asset(path: &str) -> String {
    format!("{}{path}?v={}", assets::PREFIX, assets::version(path))
}

/// A plan's phase and state as a coloured badge.
pub fn status_badge(status: Status) -> Markup {
    html! {
        span class={ "state state-" (status.state) } data-status=(status) { (status) }
    }
}

/// The hidden CSRF field of a form.
pub fn csrf_field(viewer: &Viewer) -> Markup {
    html! { input type="hidden" name=(CSRF_FIELD) value=(viewer.csrf); }
}

/// A whole page: head (our stylesheet and scripts only), navigation, the
/// notice, the body.
pub fn page(
    title: &str,
    nav: Option<Nav>,
    viewer: Option<&Viewer>,
    notice: Option<&Notice>,
    body: Markup,
) -> Markup {
    let headers = viewer.map(|v| serde_json::json!({ "X-CSRF-Token": v.csrf }).to_string());
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="htmx-config" content=(HTMX_CONFIG);
                title { (title) " · lockstep" }
                link rel="stylesheet" href=(asset(assets::STYLE));
                script src=(asset(assets::HTMX)) {}
                script src=(asset(assets::HTMX_SSE)) {}
            }
            body hx-headers=[headers] {
                header.top {
                    span.brand { "lockstep" }
                    @if viewer.is_some() {
                        nav {
                            (nav_link("/ui/plans", "Plans", nav == Some(Nav::Plans)))
                            (nav_link("/ui/locks", "Locks", nav == Some(Nav::Locks)))
                            (nav_link("/ui/workers", "Workers", nav == Some(Nav::Workers)))
                            (nav_link("/ui/projects", "Projects", nav == Some(Nav::Projects)))
                        }
                    }
                    @if let Some(v) = viewer {
                        span.who { "signed in as " (text(&v.name)) }
                    }
                }
                main {
                    @if let Some(n) = notice {
                        div class=(if n.error { "notice error" } else { "notice" }) role="status" {
                            (text(&n.text))
                        }
                    }
                    (body)
                }
            }
        }
    }
}

fn nav_link(href: &str, label: &str, active: bool) -> Markup {
    html! { a href=(href) class=[active.then_some("active")] { (label) } }
}

#[cfg(test)]
mod tests;
