//! The pages rendered from hand-made records: escaping, visible invisible
//! characters, buttons per status and scope, CSRF fields, no inline script.

use std::collections::BTreeMap;

use super::*;
use crate::fleet::QueueEntry;
use crate::model::{
    Action, ChangeKind, ChangeRecord, EventRecord, Phase, PlanProposal, PlanRecord, State, Step,
};
use crate::workspace::change_diff;

const HOSTILE: &str = "<script>document.title='pwned'</script>\u{1b}[2K\u{202e}";

fn viewer(operate: bool, admin: bool) -> Viewer {
    Viewer {
        name: "ci <bot>".into(),
        can_operate: operate,
        can_admin: admin,
        csrf: "tok\"en".into(),
    }
}

fn plan(phase: Phase, state: State) -> PlanRecord {
    PlanRecord {
        id: "p1".into(),
        project_root: "/srv/<proj>".into(),
        project_id: "abc".into(),
        action: Action {
            name: HOSTILE.into(),
            strategy: "replace".into(),
            executor: "replace".into(),
            params: BTreeMap::new(),
        },
        status: Status::new(phase, state),
        version: 3,
        lock_token: Some(7),
        proposal: Some(PlanProposal {
            summary: HOSTILE.into(),
            steps: vec![Step {
                id: "s1".into(),
                title: "<img src=x onerror=alert(1)>".into(),
                params: BTreeMap::new(),
                targets: vec!["a.rs".into()],
            }],
        }),
        error: None,
        created_at: 1_764_700_000_000,
        updated_at: 1_764_700_001_000,
    }
}

fn queue(approved: bool) -> QueueEntry {
    QueueEntry {
        plan_id: "p1".into(),
        queue: "default".into(),
        priority: 0,
        auto_apply: false,
        approved,
        attempts: 0,
        max_attempts: 3,
        cancel_requested: false,
        done: false,
        submitted_at: 0,
    }
}

fn render_plan(v: &Viewer, p: &PlanRecord, q: Option<&QueueEntry>, diffs: &[FileDiff]) -> String {
    let events = [EventRecord {
        at: 1,
        actor: "w<1>".into(),
        from: None,
        to: p.status,
        reason: "</li><script>x()</script>".into(),
    }];
    let page = PlanPage {
        plan: p,
        events: &events,
        attempts: &[],
        queue: q,
        diffs,
    };
    plan_page(v, None, &page).into_string()
}

use crate::workspace::FileDiff;

/// The markup's tags (`<…>`): escaped text never contains a raw `<`.
fn tags(html: &str) -> Vec<&str> {
    html.match_indices('<')
        .map(|(i, _)| &html[i..i + html[i..].find('>').map_or(html.len() - i, |e| e + 1)])
        .collect()
}

#[test]
fn plugin_text_is_escaped_and_its_controls_are_visible() {
    let html = render_plan(
        &viewer(true, false),
        &plan(Phase::Execute, State::Complete),
        None,
        &[],
    );
    assert!(!html.contains("<script>document"), "{html}");
    assert!(html.contains("&lt;script&gt;document.title="), "{html}");
    assert!(html.contains("␛[2K\\u{202e}"), "controls shown: {html}");
    assert!(!html.contains('\u{1b}') && !html.contains('\u{202e}'));
    assert!(!html.contains("<img"), "{html}");
    assert!(!html.contains("<script>x()"), "{html}");
    assert!(html.contains("/srv/&lt;proj&gt;"));
    assert!(html.contains("ci &lt;bot&gt;"));
}

#[test]
fn pages_load_only_our_own_scripts_and_no_inline_code() {
    let html = render_plan(
        &viewer(true, true),
        &plan(Phase::Execute, State::Complete),
        None,
        &[],
    );
    let scripts: Vec<&str> = html
        .match_indices("<script")
        .map(|(i, _)| &html[i..])
        .collect();
    assert_eq!(scripts.len(), 2, "htmx and its SSE extension only");
    for s in scripts {
        assert!(
            s.starts_with("<script src=\"/ui/assets/vendor/"),
            "{}",
            &s[..60]
        );
        assert!(s.contains("></script>"));
    }
    for tag in tags(&html) {
        let attrs: Vec<&str> = tag.split_whitespace().skip(1).collect();
        assert!(
            !attrs
                .iter()
                .any(|a| a.starts_with("on") || a.starts_with("style=")),
            "an inline handler or style: {tag}"
        );
        assert!(
            !tag.contains("javascript:") && !tag.starts_with("<style"),
            "{tag}"
        );
    }
}

#[test]
fn buttons_follow_the_status_and_the_scope() {
    let executed = plan(Phase::Execute, State::Complete);
    let html = render_plan(&viewer(true, false), &executed, Some(&queue(false)), &[]);
    for id in ["btn-approve", "btn-cancel", "btn-revert"] {
        assert!(html.contains(id), "{id}: {html}");
    }
    assert!(!html.contains("btn-retry"));
    assert!(
        html.contains("name=\"csrf_token\" value=\"tok&quot;en\""),
        "{html}"
    );
    let approved = render_plan(&viewer(true, false), &executed, Some(&queue(true)), &[]);
    assert!(!approved.contains("btn-approve"), "already approved");
    let read_only = render_plan(&viewer(false, false), &executed, Some(&queue(false)), &[]);
    assert!(!read_only.contains("btn-") && read_only.contains("Read-only"));
    let errored = render_plan(
        &viewer(true, false),
        &plan(Phase::Apply, State::Errored),
        None,
        &[],
    );
    assert!(errored.contains("btn-retry") && errored.contains("btn-revert"));
    let applied = render_plan(
        &viewer(true, true),
        &plan(Phase::Apply, State::Applied),
        None,
        &[],
    );
    assert!(!applied.contains("btn-"), "terminal: no actions");
}

fn write(path: &str, base: &[u8], new: &[u8]) -> ChangeRecord {
    ChangeRecord {
        path: path.into(),
        kind: ChangeKind::Write,
        contents: Some(new.to_vec()),
        base_contents: Some(base.to_vec()),
        base_hash: Some("h".into()),
        new_hash: None,
    }
}

#[test]
fn invisible_changes_are_marked_in_the_diff() {
    let diffs = [
        change_diff(&write(
            "src/lib.rs",
            b"fn a() {}\n",
            b"\xef\xbb\xbffn a() {}\x1b[2K \r\n<b>\n",
        )),
        change_diff(&write("w.txt", b"one\r\ntwo\r\n", b"one\ntwo\n")),
        change_diff(&write("config.toml", b"key = 1\n", b"")),
        change_diff(&write("logo.png", b"\x00\x01", b"\x00\x02\x03")),
    ];
    let html = file_diffs(&diffs).into_string();
    assert!(
        html.contains("<mark class=\"inv\" title=\"invisible character\">\\u{feff}</mark>"),
        "{html}"
    );
    assert!(
        html.contains("<mark class=\"inv\" title=\"invisible character\">␛</mark>[2K"),
        "{html}"
    );
    assert!(
        html.contains("<mark class=\"ws\" title=\"trailing whitespace\">·</mark>"),
        "{html}"
    );
    assert!(
        html.contains("<mark class=\"cr\" title=\"carriage return (CRLF)\">␍</mark>"),
        "{html}"
    );
    assert!(
        html.contains("&lt;b&gt;") && !html.contains("<b>"),
        "{html}"
    );
    for note in [
        "a byte order mark (BOM) is added",
        "line endings only: CRLF → LF",
        "the file is emptied (8 bytes → 0 bytes)",
        "binary, 2 bytes → 3 bytes",
        "control or invisible characters",
    ] {
        assert!(html.contains(note), "{note}: {html}");
    }
    assert!(!html.contains('\u{1b}') && !html.contains('\r'));
    assert!(html.contains("data-path=\"src/lib.rs\""));
}

fn projects() -> Vec<crate::store::PlanProject> {
    vec![crate::store::PlanProject {
        id: "abc".into(),
        root: "/srv/<proj>".into(),
    }]
}

#[test]
fn the_plans_page_counts_filters_and_offers_bulk_actions_by_scope() {
    let plans = [plan(Phase::Execute, State::Complete)];
    let counts = [(State::Complete, 1), (State::Applied, 4)];
    let projects = projects();
    let page = PlansPage {
        plans: &plans,
        matching: 1,
        counts: &counts,
        state: Some(State::Complete),
        project: None,
        projects: &projects,
        older: None,
        paged: false,
    };
    let html = plans_page(&viewer(true, false), None, &page).into_string();
    assert!(html.contains("<b>5</b>all"), "{html}");
    assert!(
        html.contains("data-state=\"applied\"><b>4</b>applied"),
        "{html}"
    );
    assert!(html.contains("value=\"approve\"") && html.contains("name=\"id\" value=\"p1\""));
    assert!(
        html.contains("<option value=\"complete\" selected>"),
        "{html}"
    );
    assert!(
        html.contains("<option value=\"abc\">/srv/&lt;proj&gt;</option>"),
        "{html}"
    );
    assert!(html.contains("href=\"/ui/plans?state=queued\""), "{html}");
    assert!(!html.contains("<script>document"));
    assert!(!html.contains("id=\"page-older\"") && !html.contains("id=\"page-newest\""));
    let ro = plans_page(&viewer(false, false), None, &page).into_string();
    assert!(!ro.contains("value=\"approve\"") && !ro.contains("type=\"checkbox\""));
    assert!(!ro.contains("value=\"matching\""), "{ro}");
}

#[test]
fn the_plans_page_links_to_older_plans_with_its_filters() {
    let plans = [plan(Phase::Execute, State::Complete)];
    let counts = [(State::Complete, 450)];
    let projects = projects();
    let mut page = PlansPage {
        plans: &plans,
        matching: 450,
        counts: &counts,
        state: Some(State::Complete),
        project: Some("abc"),
        projects: &projects,
        older: Some("1764700000000.p1"),
        paged: false,
    };
    let first = plans_page(&viewer(false, false), None, &page).into_string();
    assert!(
        first.contains(
            "href=\"/ui/plans?state=complete&amp;project=abc&amp;cursor=1764700000000.p1\" id=\"page-older\""
        ),
        "{first}"
    );
    assert!(!first.contains("page-newest"), "{first}");
    assert!(first.contains("450 matching plans"), "{first}");
    assert!(first.contains("<option value=\"abc\" selected>"), "{first}");
    // A later page: back to the newest, and no further link on the last.
    page.older = None;
    page.paged = true;
    let last = plans_page(&viewer(false, false), None, &page).into_string();
    assert!(
        last.contains("href=\"/ui/plans?state=complete&amp;project=abc\" id=\"page-newest\""),
        "{last}"
    );
    assert!(!last.contains("page-older"), "{last}");
}

#[test]
fn bulk_actions_offer_every_matching_plan_and_keep_the_filters() {
    let plans = [plan(Phase::Execute, State::Complete)];
    let counts = [(State::Complete, 450)];
    let projects = projects();
    let page = PlansPage {
        plans: &plans,
        matching: 450,
        counts: &counts,
        state: Some(State::Complete),
        project: Some("abc"),
        projects: &projects,
        older: Some("1.p1"),
        paged: false,
    };
    let html = plans_page(&viewer(true, false), None, &page).into_string();
    let form = &html[html.find("action=\"/ui/plans/bulk\"").unwrap()..];
    let form = &form[..form.find("</form>").unwrap()];
    assert!(
        form.contains("<option value=\"matching\">all 450 matching plans</option>"),
        "{form}"
    );
    assert!(
        form.contains("<option value=\"ticked\" selected>"),
        "{form}"
    );
    assert!(
        form.contains("name=\"state\" value=\"complete\"")
            && form.contains("name=\"project\" value=\"abc\""),
        "{form}"
    );
    assert!(
        form.contains("name=\"csrf_token\" value=\"tok&quot;en\""),
        "{form}"
    );
    // Nothing matches: nothing to offer.
    let none = PlansPage {
        plans: &[],
        matching: 0,
        older: None,
        ..page
    };
    let html = plans_page(&viewer(true, false), None, &none).into_string();
    assert!(!html.contains("value=\"matching\""), "{html}");
}

#[test]
fn a_bulk_action_on_every_matching_plan_is_confirmed_first() {
    let confirm = BulkConfirm {
        action: "cancel",
        matching: 1500,
        limit: 1000,
        state: Some(State::Queued),
        project: Some("abc"),
        project_root: Some("/srv/<proj>"),
    };
    let html = bulk_confirm_page(&viewer(true, false), &confirm).into_string();
    assert!(html.contains("cancel <b>1500</b> plans matching"), "{html}");
    assert!(
        html.contains("/srv/&lt;proj&gt;") && !html.contains("/srv/<proj>"),
        "{html}"
    );
    assert!(html.contains("the newest 1000 now"), "{html}");
    for field in [
        "name=\"which\" value=\"matching\"",
        "name=\"confirm\" value=\"yes\"",
        "name=\"state\" value=\"queued\"",
        "name=\"project\" value=\"abc\"",
        "name=\"csrf_token\" value=\"tok&quot;en\"",
        "name=\"action\" value=\"cancel\"",
    ] {
        assert!(html.contains(field), "{field}: {html}");
    }
    assert!(html.contains(">cancel 1000 plans</button>"), "{html}");
    assert!(
        html.contains("href=\"/ui/plans?state=queued&amp;project=abc\""),
        "{html}"
    );
    let few = BulkConfirm {
        matching: 3,
        state: None,
        project: None,
        project_root: None,
        ..confirm
    };
    let html = bulk_confirm_page(&viewer(true, false), &few).into_string();
    assert!(
        html.contains("cancel <b>3</b> plans (every plan)?"),
        "{html}"
    );
    assert!(!html.contains("at a time"), "{html}");
    assert!(html.contains(">cancel 3 plans</button>"), "{html}");
}

#[test]
fn force_release_is_offered_to_admins_only_and_asks_for_a_reason() {
    let lock = crate::locks::LockInfo {
        resource: "plan:<p1>".into(),
        owner: "h:1:x".into(),
        token: 42,
        operation: "apply".into(),
        holder: crate::locks::Holder {
            host: "h".into(),
            pid: 1,
            user: "u".into(),
        },
        holds: 1,
        acquired_at: 0,
        expires_at: 1,
        stale: true,
    };
    let admin = locks_page(&viewer(true, true), None, std::slice::from_ref(&lock)).into_string();
    assert!(admin.contains("name=\"reason\" required"), "{admin}");
    assert!(admin.contains("plan:&lt;p1&gt;") && admin.contains(">42<") && admin.contains("stale"));
    let operator = locks_page(&viewer(true, false), None, &[lock]).into_string();
    assert!(!operator.contains("/ui/locks/release"));
}

#[test]
fn the_login_page_posts_a_token_and_shows_no_navigation() {
    let html = login_page(
        "/ui/plans/<x>",
        Some(&Notice {
            text: "wrong token".into(),
            error: true,
        }),
    )
    .into_string();
    assert!(html.contains("action=\"/login\"") && html.contains("name=\"token\""));
    assert!(
        html.contains("name=\"next\" value=\"/ui/plans/&lt;x&gt;\""),
        "{html}"
    );
    assert!(html.contains("notice error") && !html.contains("<nav>"));
}

#[test]
fn times_are_shown_in_utc() {
    assert_eq!(when(0), "1970-01-01 00:00:00 UTC");
    assert_eq!(when(1_764_700_001_000), "2025-12-02 18:26:41 UTC");
}

#[test]
fn the_projects_page_links_each_project_to_its_plans() {
    let rows = [ProjectRow {
        id: "abc".into(),
        root: "/srv/<proj>".into(),
        plans: 3,
        active: 1,
    }];
    let html = projects_page(&viewer(false, false), &rows).into_string();
    assert!(
        html.contains("<a href=\"/ui/plans?project=abc\">/srv/&lt;proj&gt;</a>"),
        "{html}"
    );
    assert!(html.contains("<td>3</td><td>1</td>"), "{html}");
    let none = projects_page(&viewer(false, false), &[]).into_string();
    assert!(none.contains("No project is registered"), "{none}");
}
