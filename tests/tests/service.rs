//! `lockstep serve` over a real loopback socket, on both backends, with a
//! real HTTP client: the full flow (submit → a worker strategizes and
//! executes → diff → approve → applied), a lock conflict (409 with the
//! holder), every scope refusal, CSRF, idempotent submission, pagination,
//! and an event stream resumed after a dropped connection.

use std::path::{Path, PathBuf};
use std::time::Duration;

use lockstep_tests::cli::CliProject;
use lockstep_tests::poll::until;
use lockstep_tests::serve::ServeProc;
use lockstep_tests::{on_both_backends, Backend, TestDb};
use reqwest::{Client, Method, StatusCode};
use serde_json::{json, Value};

/// A server on a fresh database, its projects root, an HTTP client and two
/// tokens: `admin` (named `root`) and `op` (`operate`, named `ci`).
struct Api {
    server: ServeProc,
    root: PathBuf,
    http: Client,
    admin: String,
    op: String,
    /// Dropped after the server.
    db: TestDb,
}

impl Api {
    async fn start(backend: Backend, extra: &[&str]) -> Api {
        let db = TestDb::new(backend).await;
        let root = db.dir.path().join("projects");
        std::fs::create_dir_all(&root).unwrap();
        let root = std::fs::canonicalize(root).unwrap();
        let server = ServeProc::start(&db.url, &root, extra);
        let http = Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        Api {
            admin: server.token("admin", "root"),
            op: server.token("operate", "ci"),
            server,
            root,
            http,
            db,
        }
    }

    /// A request to `path` on the server, to finish and send.
    fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.http.request(method, self.server.url(path))
    }

    fn project(&self, name: &str) -> PathBuf {
        let p = self.root.join(name);
        std::fs::create_dir_all(p.join("src")).unwrap();
        std::fs::write(p.join("src/main.rs"), "fn main() {}\n").unwrap();
        std::fs::write(p.join("lib.rs"), "pub fn f() {}\n").unwrap();
        p
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self.request(method, path);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let text = resp.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    async fn get(&self, path: &str, token: &str) -> Value {
        let (status, body) = self.call(Method::GET, path, Some(token), None).await;
        assert_eq!(status, StatusCode::OK, "GET {path}: {body}");
        body
    }

    async fn post(&self, path: &str, token: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::POST, path, Some(token), Some(body)).await
    }

    /// A dashboard page as a browser asks for it, with a bearer token.
    async fn page(&self, path: &str, token: &str) -> String {
        let resp = self
            .request(Method::GET, path)
            .bearer_auth(token)
            .header("accept", "text/html")
            .send()
            .await
            .unwrap();
        let status = resp.status();
        let text = resp.text().await.unwrap();
        assert_eq!(status, StatusCode::OK, "GET {path}: {text}");
        text
    }

    /// Post a dashboard form with a bearer token; the page answered.
    async fn form(&self, path: &str, token: &str, fields: &[(&str, &str)]) -> (StatusCode, String) {
        let resp = self
            .request(Method::POST, path)
            .bearer_auth(token)
            .header("accept", "text/html")
            .form(fields)
            .send()
            .await
            .unwrap();
        (resp.status(), resp.text().await.unwrap())
    }

    /// `GET path` with a bearer token, as text (the metrics).
    async fn text(&self, path: &str, token: &str) -> String {
        let resp = self
            .request(Method::GET, path)
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "GET {path}");
        resp.text().await.unwrap()
    }

    /// Register `project` (admin) and return its id.
    async fn register(&self, admin: &str, project: &Path) -> String {
        let (status, body) = self
            .post("/api/v1/projects", admin, json!({ "path": project }))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body["id"].as_str().unwrap().to_string()
    }

    async fn submit(&self, token: &str, project: &str, extra: Value) -> (StatusCode, Value) {
        let mut body = json!({ "project": project, "action": license() });
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        self.post("/api/v1/plans", token, body).await
    }

    /// Submit a plan on `project` that must be accepted; its id.
    async fn plan(&self, token: &str, project: &str) -> String {
        let (status, sub) = self.submit(token, project, json!({})).await;
        assert!(status.is_success(), "{status} {sub}");
        sub["plan_id"].as_str().unwrap().to_string()
    }

    async fn status(&self, token: &str, plan: &str) -> String {
        let p = self.get(&format!("/api/v1/plans/{plan}"), token).await;
        let s = &p["plan"]["status"];
        format!(
            "{}/{}",
            s["phase"].as_str().unwrap(),
            s["state"].as_str().unwrap()
        )
    }

    async fn wait_for(&self, token: &str, plan: &str, want: &str) {
        until(
            &format!("plan {plan} reaches {want}"),
            Duration::from_secs(60),
            || async { self.status(token, plan).await == want },
        )
        .await;
    }
}

fn license() -> Value {
    json!({
        "name": "license",
        "strategy": "license-header",
        "executor": "license-header",
        "params": { "header": "SPDX-License-Identifier: MIT", "globs": "**/*.rs", "comment": "// " }
    })
}

async fn the_full_flow_runs_from_submission_to_applied(backend: Backend) {
    let api = Api::start(backend, &["--workers", "1"]).await;
    let (admin, op) = (&api.admin, &api.op);
    let project = api.project("a");
    let id = api.register(admin, &project).await;
    let (status, sub) = api.submit(op, &id, json!({})).await;
    assert_eq!(status, StatusCode::CREATED, "{sub}");
    let plan = sub["plan_id"].as_str().unwrap().to_string();
    // Review before apply: the worker stops at execute/complete.
    api.wait_for(op, &plan, "execute/complete").await;
    let diff = api.get(&format!("/api/v1/plans/{plan}/diff"), op).await;
    let files = diff["files"].as_array().unwrap();
    assert_eq!(files.len(), 2, "{diff}");
    assert!(
        files.iter().all(|f| f["diff"]
            .as_str()
            .unwrap()
            .contains("+// SPDX-License-Identifier: MIT")),
        "{diff}"
    );
    assert_eq!(
        std::fs::read_to_string(project.join("lib.rs")).unwrap(),
        "pub fn f() {}\n"
    );
    let (status, approved) = api
        .post(&format!("/api/v1/plans/{plan}/approve"), op, json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{approved}");
    assert_eq!(approved["result"], "approved");
    api.wait_for(op, &plan, "apply/applied").await;
    assert!(std::fs::read_to_string(project.join("lib.rs"))
        .unwrap()
        .starts_with("// SPDX"));
    let detail = api.get(&format!("/api/v1/plans/{plan}"), op).await;
    assert_eq!(detail["queue"]["approved"], true, "{detail}");
    assert!(
        detail["attempts"].as_array().unwrap().len() >= 3,
        "{detail}"
    );
    let events = api.get(&format!("/api/v1/plans/{plan}/events"), op).await;
    let last = events["events"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["to"], "apply/applied", "{events}");
    let after = events["last_id"].as_i64().unwrap();
    let none = api
        .get(&format!("/api/v1/plans/{plan}/events?after={after}"), op)
        .await;
    assert_eq!(none["events"], json!([]));
    let workers = api.get("/api/v1/workers", op).await;
    assert_eq!(workers.as_array().unwrap().len(), 1, "{workers}");
    let metrics = api.text("/metrics", op).await;
    assert!(
        metrics.contains("lockstep_plans{phase=\"apply\",state=\"applied\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("lockstep_worker_heartbeat_age_seconds{worker="),
        "{metrics}"
    );
    assert!(
        metrics.contains("lockstep_phase_duration_seconds_count{phase=\"execute\"} 1"),
        "{metrics}"
    );
    let doc = api
        .call(Method::GET, "/api/openapi.json", None, None)
        .await
        .1;
    assert!(
        doc["paths"]["/api/v1/plans/{id}/approve"]["post"].is_object(),
        "{doc}"
    );
    // SIGTERM: the server and its worker stop cleanly.
    let (exit, err) = api.server.terminate(Duration::from_secs(20));
    assert!(exit.success(), "{exit}: {err}");
}

async fn a_lock_conflict_is_409_with_the_holder(backend: Backend) {
    let api = Api::start(backend, &["--workers", "0"]).await;
    let (admin, op) = (&api.admin, &api.op);
    let project = api.project("a");
    let id = api.register(admin, &project).await;
    let plan = api.plan(op, &id).await;
    let resource = format!("plan:{plan}");
    let cli = CliProject::new(&api.db, &api.root);
    let mut holder = cli.spawn(&[
        "locks",
        "hold",
        &resource,
        "--for",
        "60s",
        "--reason",
        "maintenance",
    ]);
    cli.wait_for_lock(&resource);
    let (status, problem) = api
        .post(&format!("/api/v1/plans/{plan}/revert"), op, json!({}))
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{problem}");
    assert_eq!(problem["kind"], "lock-conflict", "{problem}");
    assert_eq!(
        problem["holder"]["resource"],
        resource.as_str(),
        "{problem}"
    );
    assert_eq!(problem["holder"]["operation"], "maintenance", "{problem}");
    assert!(
        problem["holder"]["holder"]["pid"].as_i64().unwrap() > 0,
        "{problem}"
    );
    let locks = api.get("/api/v1/locks", op).await;
    assert!(locks.to_string().contains(&resource), "{locks}");
    // Force-release: admin only, with a reason, audited.
    let release = json!({ "resource": resource, "reason": "stuck holder" });
    let (status, _) = api.post("/api/v1/locks/release", op, release.clone()).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = api
        .post(
            "/api/v1/locks/release",
            admin,
            json!({ "resource": resource, "reason": " " }),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, released) = api.post("/api/v1/locks/release", admin, release).await;
    assert_eq!(status, StatusCode::OK, "{released}");
    assert_eq!(released["released"], true, "{released}");
    let audit = api.get("/api/v1/audit", admin).await;
    let entry = &audit[0];
    assert_eq!(entry["action"], "lock.force_release", "{audit}");
    assert_eq!(entry["reason"], "stuck holder", "{audit}");
    assert_eq!(entry["actor"], "root", "{audit}");
    let metrics = api.text("/metrics", op).await;
    assert!(
        metrics.contains("lockstep_lock_conflicts_total 1"),
        "{metrics}"
    );
    let _ = holder.kill();
    let _ = holder.wait();
}

async fn every_scope_refusal_is_401_or_403(backend: Backend) {
    let api = Api::start(backend, &["--workers", "0"]).await;
    let (admin, op) = (&api.admin, &api.op);
    let read = api.server.token("read", "viewer");
    let id = api.register(admin, &api.project("a")).await;
    let plan = api.plan(op, &id).await;
    let reads = [
        "/api/v1/plans".to_string(),
        format!("/api/v1/plans/{plan}"),
        format!("/api/v1/plans/{plan}/diff"),
        format!("/api/v1/plans/{plan}/events"),
        "/api/v1/locks".into(),
        "/api/v1/workers".into(),
        "/api/v1/projects".into(),
        "/api/v1/session".into(),
        "/metrics".into(),
    ];
    for path in &reads {
        let (status, body) = api.call(Method::GET, path, None, None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{path}: {body}");
        assert_eq!(body["kind"], "unauthenticated", "{path}: {body}");
        let (status, _) = api
            .call(Method::GET, path, Some("lst_not-a-token"), None)
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{path}");
        let (status, _) = api.call(Method::GET, path, Some(&read), None).await;
        assert_eq!(status, StatusCode::OK, "{path}");
    }
    let submit = json!({ "project": id, "action": license() });
    let operate_routes = [
        ("/api/v1/plans".to_string(), submit),
        (format!("/api/v1/plans/{plan}/approve"), json!({})),
        (format!("/api/v1/plans/{plan}/cancel"), json!({})),
        (format!("/api/v1/plans/{plan}/retry"), json!({})),
        (format!("/api/v1/plans/{plan}/revert"), json!({})),
        (
            "/api/v1/plans/actions".into(),
            json!({ "action": "approve", "ids": [plan] }),
        ),
    ];
    let admin_routes = [
        (
            "/api/v1/projects".to_string(),
            json!({ "path": api.root.join("a") }),
        ),
        (
            "/api/v1/locks/release".into(),
            json!({ "resource": "plan:x", "reason": "r" }),
        ),
    ];
    for (path, body) in operate_routes.iter().chain(&admin_routes) {
        let (status, _) = api.call(Method::POST, path, None, Some(body.clone())).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{path}");
        let (status, problem) = api.post(path, &read, body.clone()).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{path}: {problem}");
        assert_eq!(problem["kind"], "forbidden", "{path}: {problem}");
    }
    for (path, body) in &admin_routes {
        let (status, _) = api.post(path, op, body.clone()).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{path}");
    }
    let (status, _) = api.call(Method::GET, "/api/v1/audit", Some(op), None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // Health needs nothing; a browser without a session goes to the login page.
    let (status, _) = api.call(Method::GET, "/healthz", None, None).await;
    assert_eq!(status, StatusCode::OK);
    let page = api
        .http
        .get(api.server.url("/metrics?x=1"))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::SEE_OTHER);
    assert_eq!(page.headers()["location"], "/login?next=/metrics%3Fx%3D1");
    // A revoked token stops working.
    let listed = CliProject::new(&api.db, &api.root).json(&["tokens", "list"]);
    let viewer = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "viewer")
        .unwrap();
    CliProject::new(&api.db, &api.root).ok(&["tokens", "revoke", viewer["id"].as_str().unwrap()]);
    let (status, _) = api
        .call(Method::GET, "/api/v1/plans", Some(&read), None)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

/// Log in with `token`; the session cookie's value.
async fn login(api: &Api, token: &str) -> (String, String) {
    let resp = api
        .http
        .post(api.server.url("/login?next=/api/v1/plans"))
        .form(&[("token", token)])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(resp.headers()["location"], "/api/v1/plans");
    let set = resp.headers()["set-cookie"].to_str().unwrap().to_string();
    let value = set.split(';').next().unwrap().to_string();
    (value, set)
}

async fn cookie_sessions_need_the_csrf_token(backend: Backend) {
    let api = Api::start(backend, &["--workers", "0", "--secure-cookies"]).await;
    let (admin, op) = (&api.admin, &api.op);
    let id = api.register(admin, &api.project("a")).await;
    let plan = api.plan(op, &id).await;
    let bad = api
        .http
        .post(api.server.url("/login"))
        .form(&[("token", "lst_wrong")])
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), StatusCode::SEE_OTHER);
    assert!(bad.headers().get("set-cookie").is_none());
    assert!(bad.headers()["location"]
        .to_str()
        .unwrap()
        .starts_with("/login?failed=1"));
    let (cookie, set) = login(&api, op).await;
    for attr in ["HttpOnly", "SameSite=Strict", "Secure", "Path=/"] {
        assert!(set.contains(attr), "{set}");
    }
    let with_cookie = |m: Method, path: &str| api.request(m, path).header("cookie", cookie.clone());
    let me: Value = with_cookie(Method::GET, "/api/v1/session")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["who"], "ci");
    assert_eq!(me["scope"], "operate");
    let csrf = me["csrf_token"].as_str().unwrap().to_string();
    let page = with_cookie(Method::GET, "/ui/plans")
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert_eq!(page.headers()["x-frame-options"], "DENY");
    let policies: Vec<_> = page
        .headers()
        .get_all("content-security-policy")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect();
    assert!(!policies.is_empty());
    assert!(
        policies
            .iter()
            .all(|p| p.contains("frame-ancestors 'none'")),
        "{policies:?}"
    );
    assert!(page.text().await.unwrap().contains("signed in as ci"));
    let anonymous = api
        .http
        .get(api.server.url("/ui/plans"))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), StatusCode::SEE_OTHER);
    assert_eq!(anonymous.headers()["location"], "/login?next=/ui/plans");
    let approve = format!("/api/v1/plans/{plan}/approve");
    for attempt in [None, Some("0".repeat(64))] {
        let mut req = with_cookie(Method::POST, &approve);
        if let Some(t) = attempt {
            req = req.header("x-csrf-token", t);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::FORBIDDEN);
        let problem: Value = resp.json().await.unwrap();
        assert_eq!(problem["kind"], "csrf", "{problem}");
    }
    let wrong_form = with_cookie(Method::POST, &approve)
        .form(&[("csrf_token", "nope")])
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_form.status(), StatusCode::FORBIDDEN);
    let ok = with_cookie(Method::POST, &approve)
        .header("x-csrf-token", &csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), StatusCode::OK, "{}", ok.text().await.unwrap());
    let form = with_cookie(Method::POST, &format!("/api/v1/plans/{plan}/cancel"))
        .form(&[("csrf_token", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(
        form.status(),
        StatusCode::OK,
        "{}",
        form.text().await.unwrap()
    );
    // A bearer token needs no CSRF token; logging out ends the session.
    let (status, _) = api.post(&approve, op, json!({})).await;
    assert_eq!(status, StatusCode::CONFLICT);
    let out = with_cookie(Method::POST, "/logout")
        .form(&[("csrf_token", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), StatusCode::SEE_OTHER);
    let gone = with_cookie(Method::GET, "/api/v1/session")
        .send()
        .await
        .unwrap();
    assert_eq!(gone.status(), StatusCode::UNAUTHORIZED);
}

async fn a_submission_with_a_used_key_returns_the_first_plan(backend: Backend) {
    let api = Api::start(backend, &["--workers", "0"]).await;
    let (admin, op) = (&api.admin, &api.op);
    let project = api.project("a");
    api.register(admin, &project).await;
    let path = project.to_str().unwrap();
    let (first, a) = api
        .submit(op, path, json!({ "idempotency_key": "deploy-42" }))
        .await;
    let (again, b) = api
        .submit(op, path, json!({ "idempotency_key": "deploy-42" }))
        .await;
    assert_eq!(
        (first, again),
        (StatusCode::CREATED, StatusCode::OK),
        "{a} {b}"
    );
    assert_eq!(a["plan_id"], b["plan_id"]);
    assert_eq!(
        (a["existing"].clone(), b["existing"].clone()),
        (json!(false), json!(true))
    );
    let by_header = api
        .http
        .post(api.server.url("/api/v1/plans"))
        .bearer_auth(op)
        .header("idempotency-key", "deploy-42")
        .json(&json!({ "project": path, "action": license() }))
        .send()
        .await
        .unwrap();
    assert_eq!(by_header.status(), StatusCode::OK);
    let listed = api.get("/api/v1/plans", op).await;
    assert_eq!(listed["plans"].as_array().unwrap().len(), 1, "{listed}");
    // Only registered projects under the roots; never an arbitrary path.
    let (status, problem) = api.submit(op, "/etc", json!({})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    let outside = api.db.project("outside", &[("main.rs", "fn main() {}\n")]);
    let (status, _) = api
        .post("/api/v1/projects", admin, json!({ "path": outside }))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, _) = api
        .post(
            "/api/v1/projects",
            admin,
            json!({ "path": format!("{}/a/../../outside", api.root.display()) }),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    CliProject::new(&api.db, &api.root).ok(&["projects", "add", outside.to_str().unwrap()]);
    let (status, problem) = api.submit(op, outside.to_str().unwrap(), json!({})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("projects roots"),
        "{problem}"
    );
    let mut bad = json!({ "project": path, "action": license() });
    bad["action"]["strategy"] = json!("");
    let (status, _) = api.post("/api/v1/plans", op, bad).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
}

async fn plans_are_listed_a_page_at_a_time(backend: Backend) {
    let api = Api::start(backend, &["--workers", "0", "--max-page-size", "3"]).await;
    let (admin, op) = (&api.admin, &api.op);
    let id = api.register(admin, &api.project("a")).await;
    let mut submitted = Vec::new();
    for _ in 0..5 {
        submitted.push(api.plan(op, &id).await);
    }
    let (mut seen, mut cursor, mut pages) = (Vec::new(), None::<String>, 0);
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/v1/plans?limit=2&cursor={c}"),
            None => "/api/v1/plans?limit=2".to_string(),
        };
        let page = api.get(&path, op).await;
        pages += 1;
        seen.extend(
            page["plans"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p["id"].as_str().unwrap().to_string()),
        );
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    let mut sorted = seen.clone();
    sorted.sort();
    sorted.dedup();
    let mut expected = submitted.clone();
    expected.sort();
    assert_eq!(sorted, expected, "every plan once");
    // The cap: a page never holds more than --max-page-size.
    let big = api.get("/api/v1/plans?limit=1000", op).await;
    assert_eq!(big["plans"].as_array().unwrap().len(), 3);
    assert!(big["next_cursor"].is_string());
    // Filters.
    api.post(
        &format!("/api/v1/plans/{}/cancel", submitted[0]),
        op,
        json!({}),
    )
    .await;
    let cancelled = api.get("/api/v1/plans?state=cancelled", op).await;
    assert_eq!(
        cancelled["plans"].as_array().unwrap().len(),
        1,
        "{cancelled}"
    );
    let queued = api
        .get(&format!("/api/v1/plans?state=queued&project={id}"), op)
        .await;
    assert_eq!(queued["plans"].as_array().unwrap().len(), 3, "{queued}");
    let (status, _) = api
        .call(Method::GET, "/api/v1/plans?state=bogus", Some(op), None)
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = api
        .call(Method::GET, "/api/v1/plans?cursor=zzz", Some(op), None)
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    // The dashboard pages through the same plans with the same cursor;
    // its counts are over every plan, not the page.
    let first = api.page("/ui/plans?state=queued", op).await;
    assert!(first.contains("4 matching plans"), "{first}");
    let older = older_link(&first).expect("an Older link");
    assert!(
        older.starts_with("/ui/plans?state=queued&cursor="),
        "{older}"
    );
    let second = api.page(&older, op).await;
    let (a, b) = (listed_plans(&first), listed_plans(&second));
    assert_eq!((a.len(), b.len()), (3, 1), "{a:?} {b:?}");
    assert!(older_link(&second).is_none(), "the last page");
    assert!(second.contains("id=\"page-newest\""));
    let mut both: Vec<_> = a.iter().chain(&b).cloned().collect();
    both.sort();
    let mut queued: Vec<_> = submitted[1..].to_vec();
    queued.sort();
    assert_eq!(both, queued, "every queued plan once");
    let (status, _) = api
        .call(Method::GET, "/ui/plans?cursor=zzz", Some(op), None)
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    // A bulk action on every matching plan — more than a page — asks first.
    let all = [
        ("which", "matching"),
        ("action", "approve"),
        ("state", "queued"),
        ("project", id.as_str()),
    ];
    let (status, asked) = api.form("/ui/plans/bulk", op, &all).await;
    assert_eq!(status, StatusCode::OK, "{asked}");
    assert!(asked.contains("approve <b>4</b> plans matching"), "{asked}");
    for plan in &submitted[1..] {
        let d = api.get(&format!("/api/v1/plans/{plan}"), op).await;
        assert_eq!(d["queue"]["approved"], false, "not before the confirmation");
    }
    let confirmed: Vec<_> = all.iter().copied().chain([("confirm", "yes")]).collect();
    let (status, done) = api.form("/ui/plans/bulk", op, &confirmed).await;
    assert_eq!(status, StatusCode::OK, "{done}");
    assert!(done.contains("approve: 4 of 4 matching plans"), "{done}");
    for plan in &submitted[1..] {
        let d = api.get(&format!("/api/v1/plans/{plan}"), op).await;
        assert_eq!(d["queue"]["approved"], true, "{d}");
    }
    let d = api
        .get(&format!("/api/v1/plans/{}", submitted[0]), op)
        .await;
    assert_eq!(
        d["queue"]["approved"], false,
        "the cancelled plan did not match"
    );
    // The projects page counts the project's plans and its unfinished ones.
    let projects = api.page("/ui/projects", op).await;
    assert!(projects.contains("<td>5</td><td>4</td>"), "{projects}");
    // Bulk by filter: cancel every queued plan.
    let (status, bulk) = api
        .post(
            "/api/v1/plans/actions",
            op,
            json!({ "action": "cancel", "filter": { "state": "queued" } }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{bulk}");
    assert_eq!(bulk["succeeded"], 4, "{bulk}");
    let (_, bulk) = api
        .post(
            "/api/v1/plans/actions",
            op,
            json!({ "action": "approve", "ids": [submitted[1], "nope"] }),
        )
        .await;
    assert_eq!(bulk["failed"], 2, "{bulk}");
}

/// The plans a plans page lists, in order.
fn listed_plans(page: &str) -> Vec<String> {
    page.split("data-plan=\"")
        .skip(1)
        .map(|rest| rest[..rest.find('"').unwrap()].to_string())
        .collect()
}

/// The address of a plans page's Older link.
fn older_link(page: &str) -> Option<String> {
    let end = page.find("\" id=\"page-older\"")?;
    let start = page[..end].rfind("href=\"")? + "href=\"".len();
    Some(page[start..end].replace("&amp;", "&"))
}

/// Reads server-sent events from a response.
struct Sse {
    resp: reqwest::Response,
    buf: String,
}

impl Sse {
    async fn open(api: &Api, path: &str, token: &str, last: Option<i64>) -> Sse {
        let mut req = api
            .http
            .get(api.server.url(path))
            .bearer_auth(token)
            .timeout(Duration::from_secs(3600));
        if let Some(id) = last {
            req = req.header("last-event-id", id.to_string());
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        assert!(resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream"));
        Sse {
            resp,
            buf: String::new(),
        }
    }

    /// The next event's id and data; `None` when the stream ended.
    async fn next(&mut self) -> Option<(i64, Value)> {
        loop {
            if let Some(end) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..end + 2).collect();
                let field = |name: &str| {
                    block
                        .lines()
                        .find_map(|l| l.strip_prefix(name))
                        .map(|v| v.trim().to_string())
                };
                if let (Some(id), Some(data)) = (field("id:"), field("data:")) {
                    return Some((id.parse().unwrap(), serde_json::from_str(&data).unwrap()));
                }
                continue;
            }
            let chunk = tokio::time::timeout(Duration::from_secs(30), self.resp.chunk())
                .await
                .expect("an event within 30 s")
                .ok()??;
            self.buf.push_str(&String::from_utf8_lossy(&chunk));
        }
    }
}

async fn an_event_stream_resumes_after_a_dropped_connection(backend: Backend) {
    let api = Api::start(backend, &["--workers", "0"]).await;
    let (admin, op) = (&api.admin, &api.op);
    let id = api.register(admin, &api.project("a")).await;
    let plan = api.plan(op, &id).await;
    let path = format!("/api/v1/plans/{plan}/events/stream");
    let mut stream = Sse::open(&api, &path, op, None).await;
    let (first, created) = stream.next().await.unwrap();
    assert_eq!(created["to"], "strategize/queued", "{created}");
    assert_eq!(created["plan_id"], plan.as_str());
    drop(stream);
    // While nobody listens, the plan moves on.
    api.post(&format!("/api/v1/plans/{plan}/cancel"), op, json!({}))
        .await;
    let mut resumed = Sse::open(&api, &path, op, Some(first)).await;
    let (next, cancelled) = resumed.next().await.unwrap();
    assert!(next > first);
    assert_eq!(cancelled["to"], "strategize/cancelled", "{cancelled}");
    // The stream of every plan delivers new events live.
    let mut all = Sse::open(&api, "/api/v1/events/stream", op, None).await;
    let other = api.plan(op, &id).await;
    let (_, live) = all.next().await.unwrap();
    assert_eq!(live["plan_id"], other.as_str(), "{live}");
    // SIGTERM ends open streams and the server exits cleanly.
    let (exit, err) = api.server.terminate(Duration::from_secs(20));
    assert!(exit.success(), "{exit}: {err}");
    assert!(all.next().await.is_none());
    assert!(resumed.next().await.is_none());
}

async fn the_trusted_user_header_authenticates_behind_a_proxy(backend: Backend) {
    let api = Api::start(
        backend,
        &[
            "--workers",
            "0",
            "--trusted-user-header",
            "X-Remote-User",
            "--trusted-user-scope",
            "operate",
            "--trusted-groups-header",
            "X-Remote-Groups",
            "--trusted-group-scope",
            "ops=admin",
            "--trusted-group-scope",
            "readers=read",
            "--body-limit",
            "4096",
        ],
    )
    .await;
    let (admin, op) = (&api.admin, &api.op);
    let id = api.register(admin, &api.project("a")).await;
    let plan = api.plan(op, &id).await;
    let as_user = |m: Method, path: &str| api.request(m, path).header("x-remote-user", "alice");
    let me: Value = as_user(Method::GET, "/api/v1/session")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (me["who"].as_str(), me["via"].as_str()),
        (Some("alice"), Some("proxy")),
        "{me}"
    );
    assert_eq!(me["scope"], "operate");
    let approve = format!("/api/v1/plans/{plan}/approve");
    // The header is ambient, as a cookie is: unsafe requests need the CSRF token.
    let refused = as_user(Method::POST, &approve).send().await.unwrap();
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    let csrf = me["csrf_token"].as_str().unwrap();
    let ok = as_user(Method::POST, &approve)
        .header("x-csrf-token", csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), StatusCode::OK);
    // The proxy's users get the configured scope, no more.
    let admin_only = as_user(Method::GET, "/api/v1/audit").send().await.unwrap();
    assert_eq!(admin_only.status(), StatusCode::FORBIDDEN);
    let audit = api.get("/api/v1/audit", admin).await;
    assert_eq!(audit[0]["actor"], "alice", "{audit}");
    // Groups raise a user's scope: only a group mapped to admin grants it.
    let as_member = |user: &str, groups: &str| {
        api.request(Method::GET, "/api/v1/audit")
            .header("x-remote-user", user)
            .header("x-remote-groups", groups)
    };
    let granted = as_member("bob", "staff, ops").send().await.unwrap();
    assert_eq!(granted.status(), StatusCode::OK);
    for groups in ["staff", "devops,Ops", "readers"] {
        let refused = as_member("carol", groups).send().await.unwrap();
        assert_eq!(refused.status(), StatusCode::FORBIDDEN, "{groups}");
    }
    let me: Value = api
        .request(Method::GET, "/api/v1/session")
        .header("x-remote-user", "bob")
        .header("x-remote-groups", "ops")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["scope"], "admin", "{me}");
    // The groups header alone authenticates no one.
    let anonymous = api
        .request(Method::GET, "/api/v1/audit")
        .header("x-remote-groups", "ops")
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    // The body limit.
    let big = json!({ "project": id, "action": license(), "queue": "q".repeat(8192) });
    let (status, _) = api.post("/api/v1/plans", op, big).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
}

/// A request whose body stops arriving is answered 408 once
/// `--request-timeout` has passed, and the server goes on serving others
/// meanwhile and after. The timeout is the service's, not the database's,
/// so this runs on SQLite only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_slower_than_the_timeout_is_answered_408() {
    use std::io::{Read, Write};
    let api = Api::start(
        Backend::Sqlite,
        &["--workers", "0", "--request-timeout", "1s"],
    )
    .await;
    let op = &api.op;
    let addr = api.server.base.strip_prefix("http://").unwrap().to_string();
    let mut slow = std::net::TcpStream::connect(&addr).unwrap();
    // The head and half the promised body; the rest never comes.
    let head = format!(
        "POST /api/v1/plans HTTP/1.1\r\nhost: {addr}\r\nauthorization: Bearer {op}\r\n\
         content-type: application/json\r\ncontent-length: 64\r\n\r\n{{\"project\": \""
    );
    slow.write_all(head.as_bytes()).unwrap();
    // Others are served while it hangs.
    let listed = api.get("/api/v1/plans", op).await;
    assert_eq!(listed["plans"], json!([]), "{listed}");
    slow.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let answer = tokio::task::spawn_blocking(move || {
        let (mut answer, mut buf) = (Vec::new(), [0u8; 1024]);
        while !answer.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = slow.read(&mut buf).expect("an answer within 30 s");
            assert!(n > 0, "closed without an answer");
            answer.extend_from_slice(&buf[..n]);
        }
        answer
    })
    .await
    .unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408 "), "{answer}");
    // Nothing was submitted, and the server still answers.
    let (status, listed) = api.call(Method::GET, "/api/v1/plans", Some(op), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(listed["plans"], json!([]), "{listed}");
    let (status, _) = api.call(Method::GET, "/healthz", None, None).await;
    assert_eq!(status, StatusCode::OK);
}

on_both_backends!(
    the_trusted_user_header_authenticates_behind_a_proxy,
    the_full_flow_runs_from_submission_to_applied,
    a_lock_conflict_is_409_with_the_holder,
    every_scope_refusal_is_401_or_403,
    cookie_sessions_need_the_csrf_token,
    a_submission_with_a_used_key_returns_the_first_plan,
    plans_are_listed_a_page_at_a_time,
    an_event_stream_resumes_after_a_dropped_connection,
);
