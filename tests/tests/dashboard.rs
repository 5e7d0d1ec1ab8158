//! The dashboard in a real browser: the real `lockstep serve` (embedded
//! SQLite, one in-process worker) on loopback, a token from `lockstep
//! tokens create`, plans submitted over the API, and Debian's headless
//! chromium driven over WebDriver: log in, see the plans, cancel two of them
//! in bulk and then "all matching" after its confirmation, open a plan, see its diff, press Approve and watch the state
//! reach `applied` without a reload; a plugin's `<script>` summary is shown
//! as text and never runs. Then, as an admin: a held lock listed with its
//! holder, token and expiry and force-released with a reason (audited), the
//! running worker, the registered projects.
//!
//! Screenshots go to `$LOCKSTEP_SCREENSHOTS` (default: this build's
//! `dashboard-screenshots/` under the target folder); `docs/screenshots/`
//! holds copies. Needs chromium and chromium-driver:
//! `bash scripts/ensure-browser.sh` (run by `./dev test`).

#[path = "support/browser.rs"]
mod browser;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context};
use browser::Browser;
use fantoccini::{elements::Element, Locator};
use lockstep_tests::poll;
use lockstep_tests::process::{plugins_dist, stdout, test_user_dir, workspace_bin};

/// A summary (and action name) a hostile plugin or action might carry.
const HOSTILE: &str =
    "<script>document.title='pwned';window.pwned=1</script><img src=x onerror=\"window.pwned=2\">";

/// `lockstep` with the example plugins and the tests' user directories.
fn lockstep(data: &Path) -> Command {
    let mut cmd = Command::new(workspace_bin("lockstep"));
    cmd.env("LOCKSTEP_PLUGIN_PATH", plugins_dist())
        .env("LOCKSTEP_CACHE_DIR", test_user_dir().join("cache"))
        .env("LOCKSTEP_CONFIG_DIR", test_user_dir().join("config"))
        .env("LOCKSTEP_DATA_DIR", data)
        .env_remove("LOCKSTEP_DATABASE_URL");
    cmd
}

/// The running service; ended when dropped.
struct Server {
    child: Child,
    /// Kept open: the server writes to it.
    _stdout: BufReader<std::process::ChildStdout>,
    url: String,
}

impl Server {
    /// `lockstep serve` on a free loopback port; waits for its first line.
    fn start(data: &Path, projects: &Path) -> anyhow::Result<Server> {
        std::fs::create_dir_all(data)?;
        let mut child = lockstep(data)
            .args(["serve", "--listen", "127.0.0.1:0", "--workers", "1"])
            .args(["--poll", "100ms", "--projects-root"])
            .arg(projects)
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(data.join("serve.log"))?)
            .spawn()
            .context("start lockstep serve")?;
        let mut first = String::new();
        let mut stdout = BufReader::new(child.stdout.take().context("stdout")?);
        stdout.read_line(&mut first)?;
        let Some(url) = first.trim().strip_prefix("listening on ") else {
            let _ = child.kill();
            bail!("lockstep serve printed {first:?}");
        };
        Ok(Server {
            url: url.to_string(),
            _stdout: stdout,
            child,
        })
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn cli(data: &Path, args: &[&str]) -> String {
    let out = lockstep(data).args(args).output().expect("run lockstep");
    assert!(
        out.status.success(),
        "lockstep {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout(&out)
}

fn screenshots() -> PathBuf {
    std::env::var_os("LOCKSTEP_SCREENSHOTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("dashboard-screenshots"))
}

/// The API as one token's client.
struct Api<'a> {
    http: reqwest::Client,
    server: &'a Server,
    token: String,
}

impl<'a> Api<'a> {
    fn new(server: &'a Server, token: &str) -> Api<'a> {
        Api {
            http: reqwest::Client::new(),
            server,
            token: token.to_string(),
        }
    }

    /// `method path` with the token (and a JSON body): the status and the
    /// JSON answered.
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> anyhow::Result<(reqwest::StatusCode, serde_json::Value)> {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.server.url))
            .bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().await?;
        let status = res.status();
        Ok((status, res.json().await?))
    }

    /// `GET path`, which must succeed.
    async fn get(&self, path: &str) -> serde_json::Value {
        let (status, json) = self
            .call(reqwest::Method::GET, path, None)
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}"));
        assert!(status.is_success(), "GET {path}: {status} {json}");
        json
    }

    /// Submit a plan (to `queue`, else the default one); its id.
    async fn submit(
        &self,
        project: &Path,
        action: serde_json::Value,
        queue: Option<&str>,
    ) -> anyhow::Result<String> {
        let body = serde_json::json!({ "project": project, "action": action, "queue": queue });
        let (status, json) = self
            .call(reqwest::Method::POST, "/api/v1/plans", Some(body))
            .await?;
        anyhow::ensure!(status.is_success(), "submit: {status} {json}");
        Ok(json["plan_id"].as_str().context("plan_id")?.to_string())
    }

    /// The plan's `phase/state`, as the API reports it (empty if it cannot
    /// be read).
    async fn status_of(&self, id: &str) -> String {
        let path = format!("/api/v1/plans/{id}");
        let detail = match self.call(reqwest::Method::GET, &path, None).await {
            Ok((_, json)) => json,
            Err(_) => return String::new(),
        };
        let status = &detail["plan"]["status"];
        format!(
            "{}/{}",
            status["phase"].as_str().unwrap_or_default(),
            status["state"].as_str().unwrap_or_default()
        )
    }
}

/// Go to `path` on the server.
async fn open(b: &Browser, server: &Server, path: &str) {
    b.client
        .goto(&format!("{}{path}", server.url))
        .await
        .unwrap_or_else(|e| panic!("open {path}: {e}"));
}

/// Click the element `at` finds.
async fn click(b: &Browser, at: Locator<'_>) {
    b.client
        .find(at)
        .await
        .unwrap_or_else(|e| panic!("find {at:?}: {e}"))
        .click()
        .await
        .unwrap();
}

async fn text_of(el: &Element) -> String {
    el.text().await.unwrap_or_default()
}

/// The element at `at`, once the page has it.
async fn wait_for(b: &Browser, at: Locator<'_>) -> Element {
    b.client.wait().for_element(at).await.unwrap()
}

async fn script(b: &Browser, js: &str) -> serde_json::Value {
    b.client
        .execute(js, vec![])
        .await
        .expect("run a script in the page")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reviewer_logs_in_sees_the_diff_approves_and_watches_the_plan_apply() {
    assert!(
        Browser::available(),
        "chromium and chromedriver are missing: run `bash scripts/ensure-browser.sh`"
    );
    let tmp = tempfile::tempdir().unwrap();
    let (data, projects) = (tmp.path().join("data"), tmp.path().join("projects"));
    // Two projects: a worker runs one plan of a project at a time, and the
    // first waits for its approval.
    let project = projects.join("demo");
    std::fs::create_dir_all(project.join("src")).unwrap();
    std::fs::write(
        project.join("src/lib.rs"),
        "pub fn answer() -> u32 {\n    42\n}\n",
    )
    .unwrap();
    let other = projects.join("notes");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::write(other.join("notes.txt"), "hello\n").unwrap();
    let project = project.canonicalize().unwrap();
    let other = other.canonicalize().unwrap();

    let server = Server::start(&data, &projects).expect("lockstep serve");
    let token = cli(
        &data,
        &[
            "tokens", "create", "--scope", "operate", "--name", "reviewer",
        ],
    );
    let admin = cli(
        &data,
        &["tokens", "create", "--scope", "admin", "--name", "ops"],
    );
    let (token, admin) = (token.trim().to_string(), admin.trim().to_string());
    for p in [&project, &other] {
        cli(&data, &["projects", "add", p.to_str().unwrap()]);
    }

    let api = Api::new(&server, &token);
    let header = serde_json::json!({
        "name": "license headers", "strategy": "license-header", "executor": "license-header",
        "params": { "header": "SPDX-License-Identifier: Apache-2.0" },
    });
    let licensed = api.submit(&project, header.clone(), None).await.unwrap();
    let hostile = serde_json::json!({
        "name": HOSTILE, "strategy": "replace", "executor": "replace",
        "params": { "find": HOSTILE, "replace": "x", "globs": "*.txt" },
    });
    let hostile = api.submit(&other, hostile, None).await.unwrap();
    // Three plans on a queue no worker serves: they wait, to be cancelled
    // in bulk (two ticked, then the one left as "all matching").
    let mut waiting = Vec::new();
    for _ in 0..3 {
        waiting.push(
            api.submit(&project, header.clone(), Some("later"))
                .await
                .unwrap(),
        );
    }
    for id in [&licensed, &hostile] {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        let mut status = String::new();
        while status != "execute/complete" {
            let now = tokio::time::Instant::now();
            assert!(
                now < deadline,
                "plan {id} is {status}, not executed after 60 s; the server said:\n{}",
                std::fs::read_to_string(data.join("serve.log")).unwrap_or_default()
            );
            tokio::time::sleep(poll::INTERVAL).await;
            status = api.status_of(id).await;
        }
    }

    let b = Browser::start().await.expect("start headless chromium");
    let shots = screenshots();
    log_in(&b, &server, &token).await;
    b.screenshot(&shots.join("plans.png")).await.unwrap();

    hostile_text_stays_text(&b, &server, &hostile).await;
    cancel_two_in_bulk(&b, &server, &waiting[..2], &licensed, &shots).await;
    cancel_all_matching(&b, &server, &waiting[2], &shots).await;
    approve_and_watch(&b, &server, &licensed, &shots).await;

    let written = std::fs::read_to_string(project.join("src/lib.rs")).unwrap();
    assert!(
        written.starts_with("// SPDX-License-Identifier: Apache-2.0\n"),
        "{written}"
    );

    // The operators' pages, as an admin.
    let resource = format!("plan:{hostile}");
    let mut holder = lockstep(&data)
        .arg("--database-url")
        .arg(format!("sqlite://{}", data.join("lockstep.db").display()))
        .args([
            "locks",
            "hold",
            &resource,
            "--for",
            "120s",
            "--reason",
            "maintenance",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("lockstep locks hold");
    let admin_api = Api::new(&server, &admin);
    poll::until(
        "the held lock is listed",
        Duration::from_secs(30),
        || async {
            admin_api
                .get("/api/v1/locks")
                .await
                .to_string()
                .contains(&resource)
        },
    )
    .await;
    sign_in_at(&b, &server, &admin, "/ui/locks").await;
    force_release(&b, &admin_api, &resource, &shots).await;
    let _ = holder.kill();
    let _ = holder.wait();
    workers_page(&b, &server, &shots).await;
    projects_page(&b, &server, [(&project, 4, 0), (&other, 1, 1)], &shots).await;
    b.close().await.unwrap();
}

/// A browser without a session is sent to the login page; a token logs it
/// in and lands on the plans page, which lists the submitted plans.
async fn log_in(b: &Browser, server: &Server, token: &str) {
    open(b, server, "/ui/plans").await;
    let url = b.client.current_url().await.unwrap();
    assert_eq!(url.path(), "/login", "{url}");
    let field = b
        .client
        .find(Locator::Css("input[name=token]"))
        .await
        .unwrap();
    field.send_keys(token).await.unwrap();
    click(b, Locator::Css("form[action='/login'] button[type=submit]")).await;
    let table = wait_for(b, Locator::Css("table.plans")).await;
    let rows = table
        .find_all(Locator::Css("tbody tr[data-plan]"))
        .await
        .unwrap();
    assert_eq!(rows.len(), 5, "every submitted plan is listed");
    let counts = text_of(
        &b.client
            .find(Locator::Css("[data-state=complete]"))
            .await
            .unwrap(),
    )
    .await;
    assert!(counts.starts_with('2'), "two plans executed: {counts}");
}

/// The hostile action's name and summary are shown as text: no element is
/// made from them and no script of theirs runs.
async fn hostile_text_stays_text(b: &Browser, server: &Server, id: &str) {
    open(b, server, &format!("/ui/plans/{id}")).await;
    let summary = wait_for(b, Locator::Id("proposal-summary")).await;
    let text = text_of(&summary).await;
    assert!(
        text.contains("<script>document.title='pwned'"),
        "shown as text: {text}"
    );
    assert!(summary
        .find_all(Locator::Css("script, img"))
        .await
        .unwrap()
        .is_empty());
    let pwned = script(b, "return [document.title, window.pwned === undefined];").await;
    assert_eq!(pwned[1], true, "no injected script ran: {pwned}");
    assert!(
        !pwned[0].as_str().unwrap_or_default().contains("pwned"),
        "{pwned}"
    );
}

/// The plan page shows the diff; Approve posts without leaving the page and
/// the event stream brings the state to `apply/applied`.
async fn approve_and_watch(b: &Browser, server: &Server, id: &str, shots: &Path) {
    open(b, server, &format!("/ui/plans/{id}")).await;
    let file = wait_for(b, Locator::Css("section.diff-file[data-path='src/lib.rs']")).await;
    let added = text_of(&file.find(Locator::Css("tr.added td.text")).await.unwrap()).await;
    assert_eq!(added, "// SPDX-License-Identifier: Apache-2.0");
    b.screenshot(&shots.join("plan-diff.png")).await.unwrap();
    // A marker that a reload would wipe out.
    script(b, "window.stayed = 'same page'; return null;").await;
    click(b, Locator::Id("btn-approve")).await;
    let status = |b: &Browser| {
        let c = b.client.clone();
        async move {
            match c.find(Locator::Css("#plan-status [data-status]")).await {
                Ok(el) => el
                    .attr("data-status")
                    .await
                    .ok()
                    .flatten()
                    .unwrap_or_default(),
                Err(_) => String::new(),
            }
        }
    };
    poll::until(
        "the page shows apply/applied",
        Duration::from_secs(60),
        || async { status(b).await == "apply/applied" },
    )
    .await;
    let stayed = script(b, "return window.stayed;").await;
    assert_eq!(stayed, "same page", "the state arrived without a reload");
    b.screenshot(&shots.join("plan-applied.png")).await.unwrap();
}

/// The `data-status` of the plan's row on the plans page.
async fn row_status(b: &Browser, id: &str) -> String {
    match b
        .client
        .find(Locator::Css(&format!("tr[data-plan='{id}'] [data-status]")))
        .await
    {
        Ok(el) => el
            .attr("data-status")
            .await
            .ok()
            .flatten()
            .unwrap_or_default(),
        Err(_) => String::new(),
    }
}

/// Tick two plans on the plans page and cancel them: the page says so and
/// their rows show them cancelled; the plan not ticked is left alone.
async fn cancel_two_in_bulk(
    b: &Browser,
    server: &Server,
    ids: &[String],
    untouched: &str,
    shots: &Path,
) {
    open(b, server, "/ui/plans").await;
    for id in ids {
        assert_eq!(row_status(b, id).await, "strategize/queued");
        b.client
            .find(Locator::Css(&format!(
                "tr[data-plan='{id}'] input[name=id]"
            )))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
    }
    click(b, Locator::Css("button[name=action][value=cancel]")).await;
    let notice = wait_for(b, Locator::Css(".notice")).await;
    let said = text_of(&notice).await;
    assert!(said.contains("cancel: 2 of 2 selected plans"), "{said}");
    for id in ids {
        assert_eq!(row_status(b, id).await, "strategize/cancelled", "{id}");
    }
    assert_eq!(row_status(b, untouched).await, "execute/complete");
    b.screenshot(&shots.join("plans-bulk-cancelled.png"))
        .await
        .unwrap();
}

/// Filter the plans page to queued plans, choose "all matching" and Cancel:
/// a confirmation page asks first, and confirming cancels the plan.
async fn cancel_all_matching(b: &Browser, server: &Server, id: &str, shots: &Path) {
    open(b, server, "/ui/plans?state=queued").await;
    b.client
        .find(Locator::Id("bulk-which"))
        .await
        .unwrap()
        .select_by_value("matching")
        .await
        .unwrap();
    click(b, Locator::Css("button[name=action][value=cancel]")).await;
    let asked = wait_for(b, Locator::Id("bulk-confirm")).await;
    let asked = text_of(&asked).await;
    assert!(
        asked.contains("cancel 1 plan matching state queued"),
        "{asked}"
    );
    assert_eq!(
        row_status(b, id).await,
        "",
        "no plan list before confirming"
    );
    b.screenshot(&shots.join("plans-bulk-confirm.png"))
        .await
        .unwrap();
    click(b, Locator::Id("bulk-confirm-btn")).await;
    let notice = wait_for(b, Locator::Css(".notice")).await;
    let said = text_of(&notice).await;
    assert!(said.contains("cancel: 1 of 1 matching plans"), "{said}");
    // The page keeps the filter: nothing is queued any more.
    assert_eq!(row_status(b, id).await, "");
    assert!(
        text_of(&b.client.find(Locator::Id("paging")).await.unwrap())
            .await
            .starts_with("0 matching plans")
    );
}

/// Sign in with `token` and land on `next`.
async fn sign_in_at(b: &Browser, server: &Server, token: &str, next: &str) {
    open(b, server, &format!("/login?next={next}")).await;
    b.client
        .find(Locator::Css("input[name=token]"))
        .await
        .unwrap()
        .send_keys(token)
        .await
        .unwrap();
    click(b, Locator::Css("form[action='/login'] button[type=submit]")).await;
    poll::until("the sign-in lands", Duration::from_secs(20), || async {
        b.client.current_url().await.is_ok_and(|u| u.path() == next)
    })
    .await;
}

/// The locks page lists the held lock with its holder, fencing token and
/// expiry, as the API does; releasing it with a reason removes it and is
/// audited under the admin's name.
async fn force_release(b: &Browser, api: &Api<'_>, resource: &str, shots: &Path) {
    let listed = api.get("/api/v1/locks").await;
    let lease = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["resource"] == resource)
        .unwrap_or_else(|| panic!("{resource} in {listed}"))
        .clone();
    let row = wait_for(b, Locator::Css(&format!("tr[data-resource='{resource}']"))).await;
    let cells = row.find_all(Locator::Css("td")).await.unwrap();
    let mut texts = Vec::new();
    for c in &cells {
        texts.push(text_of(c).await);
    }
    assert_eq!(texts[0], resource);
    let pid = lease["holder"]["pid"].as_i64().unwrap();
    assert!(texts[1].contains(&format!("pid {pid}")), "{texts:?}");
    assert!(
        texts[1].contains(lease["owner"].as_str().unwrap()),
        "{texts:?}"
    );
    assert_eq!(texts[2], "maintenance");
    assert_eq!(texts[3], lease["token"].to_string(), "the fencing token");
    assert!(texts[5].ends_with(" UTC"), "the expiry: {texts:?}");
    b.screenshot(&shots.join("locks.png")).await.unwrap();
    row.find(Locator::Css("input[name=reason]"))
        .await
        .unwrap()
        .send_keys("holder stuck in maintenance")
        .await
        .unwrap();
    row.find(Locator::Css("button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let notice = wait_for(b, Locator::Css(".notice")).await;
    let said = text_of(&notice).await;
    assert!(
        said.contains(&format!("released {resource} (owner ")),
        "{said}"
    );
    let left = b
        .client
        .find_all(Locator::Css(&format!("tr[data-resource='{resource}']")))
        .await
        .unwrap();
    assert!(left.is_empty(), "the lock is gone from the page");
    assert!(!api
        .get("/api/v1/locks")
        .await
        .to_string()
        .contains(resource));
    let audit = api.get("/api/v1/audit").await;
    let entry = &audit[0];
    assert_eq!(entry["action"], "lock.force_release", "{audit}");
    assert_eq!(entry["target"], resource, "{audit}");
    assert_eq!(entry["reason"], "holder stuck in maintenance", "{audit}");
    assert_eq!(entry["actor"], "ops", "{audit}");
    b.screenshot(&shots.join("locks-released.png"))
        .await
        .unwrap();
}

/// The workers page shows the server's in-process worker, alive.
async fn workers_page(b: &Browser, server: &Server, shots: &Path) {
    open(b, server, "/ui/workers").await;
    let table = wait_for(b, Locator::Css("table.workers")).await;
    let states = table
        .find_all(Locator::Css("tbody tr span.state"))
        .await
        .unwrap();
    assert_eq!(states.len(), 1, "one worker");
    let state = text_of(&states[0]).await;
    assert!(state == "idle" || state == "busy", "running: {state}");
    b.screenshot(&shots.join("workers.png")).await.unwrap();
}

/// The projects page lists each registered project with its plans and
/// active plans.
async fn projects_page<const N: usize>(
    b: &Browser,
    server: &Server,
    expected: [(&PathBuf, usize, usize); N],
    shots: &Path,
) {
    open(b, server, "/ui/projects").await;
    let table = wait_for(b, Locator::Css("table.projects")).await;
    let rows = table.find_all(Locator::Css("tbody tr")).await.unwrap();
    let mut listed = Vec::new();
    for r in &rows {
        let mut cells = Vec::new();
        for c in r.find_all(Locator::Css("td")).await.unwrap() {
            cells.push(text_of(&c).await);
        }
        listed.push(cells);
    }
    assert_eq!(listed.len(), N, "{listed:?}");
    for (root, plans, active) in expected {
        let root = root.to_str().unwrap();
        let row = listed
            .iter()
            .find(|cells| cells[1] == root)
            .unwrap_or_else(|| panic!("{root} in {listed:?}"));
        assert_eq!(
            (row[2].as_str(), row[3].as_str()),
            (plans.to_string().as_str(), active.to_string().as_str()),
            "{root}"
        );
    }
    b.screenshot(&shots.join("projects.png")).await.unwrap();
}
