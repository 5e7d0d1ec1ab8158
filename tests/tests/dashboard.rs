//! The dashboard in a real browser: the real `lockstep serve` (embedded
//! SQLite, one in-process worker) on loopback, a token from `lockstep
//! tokens create`, plans submitted over the API, and Debian's headless
//! chromium driven over WebDriver: log in, see the plans, open a plan, see
//! its diff, press Approve and watch the state reach `applied` without a
//! reload; a plugin's `<script>` summary is shown as text and never runs.
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

/// Submit a plan over the API; its id.
async fn submit(
    http: &reqwest::Client,
    server: &Server,
    token: &str,
    project: &Path,
    action: serde_json::Value,
) -> anyhow::Result<String> {
    let body = serde_json::json!({ "project": project, "action": action });
    let res = http
        .post(format!("{}/api/v1/plans", server.url))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await?;
    let status = res.status();
    let json: serde_json::Value = res.json().await?;
    anyhow::ensure!(status.is_success(), "submit: {status} {json}");
    Ok(json["plan_id"].as_str().context("plan_id")?.to_string())
}

/// The plan's `phase/state`, as the API reports it.
async fn status_of(http: &reqwest::Client, server: &Server, token: &str, id: &str) -> String {
    let detail: serde_json::Value = match http
        .get(format!("{}/api/v1/plans/{id}", server.url))
        .bearer_auth(token)
        .send()
        .await
    {
        Ok(r) => r.json().await.unwrap_or_default(),
        Err(_) => return String::new(),
    };
    let status = &detail["plan"]["status"];
    format!(
        "{}/{}",
        status["phase"].as_str().unwrap_or_default(),
        status["state"].as_str().unwrap_or_default()
    )
}

async fn text_of(el: &Element) -> String {
    el.text().await.unwrap_or_default()
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
    let token = token.trim().to_string();
    for p in [&project, &other] {
        cli(&data, &["projects", "add", p.to_str().unwrap()]);
    }

    let http = reqwest::Client::new();
    let header = serde_json::json!({
        "name": "license headers", "strategy": "license-header", "executor": "license-header",
        "params": { "header": "SPDX-License-Identifier: Apache-2.0" },
    });
    let licensed = submit(&http, &server, &token, &project, header)
        .await
        .unwrap();
    let hostile = serde_json::json!({
        "name": HOSTILE, "strategy": "replace", "executor": "replace",
        "params": { "find": HOSTILE, "replace": "x", "globs": "*.txt" },
    });
    let hostile = submit(&http, &server, &token, &other, hostile)
        .await
        .unwrap();
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
            status = status_of(&http, &server, &token, id).await;
        }
    }

    let b = Browser::start().await.expect("start headless chromium");
    let shots = screenshots();
    log_in(&b, &server, &token).await;
    b.screenshot(&shots.join("plans.png")).await.unwrap();

    hostile_text_stays_text(&b, &server, &hostile).await;
    approve_and_watch(&b, &server, &licensed, &shots).await;

    let written = std::fs::read_to_string(project.join("src/lib.rs")).unwrap();
    assert!(
        written.starts_with("// SPDX-License-Identifier: Apache-2.0\n"),
        "{written}"
    );
    b.close().await.unwrap();
}

/// A browser without a session is sent to the login page; a token logs it
/// in and lands on the plans page, which lists the submitted plans.
async fn log_in(b: &Browser, server: &Server, token: &str) {
    b.client
        .goto(&format!("{}/ui/plans", server.url))
        .await
        .unwrap();
    let url = b.client.current_url().await.unwrap();
    assert_eq!(url.path(), "/login", "{url}");
    let field = b
        .client
        .find(Locator::Css("input[name=token]"))
        .await
        .unwrap();
    field.send_keys(token).await.unwrap();
    b.client
        .find(Locator::Css("form[action='/login'] button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let table = b
        .client
        .wait()
        .for_element(Locator::Css("table.plans"))
        .await
        .unwrap();
    let rows = table
        .find_all(Locator::Css("tbody tr[data-plan]"))
        .await
        .unwrap();
    assert_eq!(rows.len(), 2, "both submitted plans are listed");
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
    b.client
        .goto(&format!("{}/ui/plans/{id}", server.url))
        .await
        .unwrap();
    let summary = b
        .client
        .wait()
        .for_element(Locator::Id("proposal-summary"))
        .await
        .unwrap();
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
    b.client
        .goto(&format!("{}/ui/plans/{id}", server.url))
        .await
        .unwrap();
    let file = b
        .client
        .wait()
        .for_element(Locator::Css("section.diff-file[data-path='src/lib.rs']"))
        .await
        .unwrap();
    let added = text_of(&file.find(Locator::Css("tr.added td.text")).await.unwrap()).await;
    assert_eq!(added, "// SPDX-License-Identifier: Apache-2.0");
    b.screenshot(&shots.join("plan-diff.png")).await.unwrap();
    // A marker that a reload would wipe out.
    script(b, "window.stayed = 'same page'; return null;").await;
    b.client
        .find(Locator::Id("btn-approve"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
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
