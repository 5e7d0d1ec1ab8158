//! `POST /login` (a token in, a session cookie out), `POST /logout`, and a
//! minimal login form for when no dashboard provides one.

use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use serde::Deserialize;

use super::auth::{cookie, form_urlencode, SESSION_COOKIE};
use super::error::ApiError;
use super::{tokens, AppState};

/// The login form's fields.
#[derive(Debug, Deserialize)]
pub struct LoginForm {
    /// An API token.
    pub token: String,
    /// Where to go after logging in (a path on this server).
    #[serde(default)]
    pub next: Option<String>,
}

/// `?next=` of the login routes.
#[derive(Debug, Deserialize)]
pub struct Next {
    /// Where to go after logging in.
    #[serde(default)]
    pub next: Option<String>,
    /// Set after a login with a wrong token.
    #[serde(default)]
    pub failed: Option<String>,
}

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/login", post(login))
        .route("/logout", post(logout))
        .route("/api/v1/session", get(whoami))
}

/// `GET /api/v1/session`: who the caller is.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct WhoAmI {
    /// A token's name, or the proxy's user.
    pub who: String,
    /// The caller's scope.
    pub scope: super::Scope,
    /// `bearer`, `session` or `proxy`.
    pub via: String,
    /// The CSRF token unsafe requests of this session must carry (absent
    /// for a bearer token).
    pub csrf_token: Option<String>,
}

/// Who the caller is, with the CSRF token of a cookie session (for
/// scripts of the dashboard's pages).
#[utoipa::path(get, path = "/api/v1/session", tag = "auth",
    responses((status = 200, body = WhoAmI), (status = 401, body = super::Problem)),
    security(("bearer" = [])))]
pub(super) async fn whoami(p: super::Principal) -> axum::Json<WhoAmI> {
    axum::Json(WhoAmI {
        who: p.who.clone(),
        scope: p.scope,
        via: match p.via {
            super::Via::Bearer(_) => "bearer",
            super::Via::Session(_) => "session",
            super::Via::Proxy(_) => "proxy",
        }
        .to_string(),
        csrf_token: p.csrf_token().map(str::to_string),
    })
}

/// The minimal pages [`super::router`] serves when no dashboard does: the
/// login form (`GET /login`) and a start page (`GET /`) that says who is
/// logged in and where the API is.
pub(super) fn page() -> Router<AppState> {
    Router::new()
        .route("/login", get(form))
        .route("/", get(start))
}

async fn start(p: super::Principal) -> Html<String> {
    let who = p
        .who
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;");
    let csrf = p.csrf_token().unwrap_or_default();
    Html(format!(
        "<!doctype html><meta charset=utf-8><title>lockstep</title>\
         <p>Logged in as {who} ({}). The API is under <a href=/api/v1/plans>/api/v1</a>, \
         described by <a href=/api/openapi.json>/api/openapi.json</a>.</p>\
         <form method=post action=/logout><input type=hidden name=csrf_token value=\"{csrf}\">\
         <button>Log out</button></form>",
        p.scope
    ))
}

/// Only a path on this server: `/x`, never `//host` or `/\host`.
pub(crate) fn local_path(next: Option<&str>) -> String {
    match next {
        Some(n) if n.starts_with('/') && !n.starts_with("//") && !n.contains('\\') => n.to_string(),
        _ => "/".to_string(),
    }
}

async fn form(Query(q): Query<Next>) -> Html<String> {
    let next = local_path(q.next.as_deref());
    let next = next
        .replace('&', "&amp;")
        .replace('"', "&quot;")
        .replace('<', "&lt;");
    let failed = if q.failed.is_some() {
        "<p>That token was not accepted (wrong, or revoked).</p>"
    } else {
        ""
    };
    Html(format!(
        "<!doctype html><meta charset=utf-8><title>lockstep — log in</title>{failed}\
         <form method=post action=/login><label>API token <input type=password name=token autofocus></label>\
         <input type=hidden name=next value=\"{next}\"><button>Log in</button></form>"
    ))
}

async fn login(
    State(state): State<AppState>,
    Query(q): Query<Next>,
    Form(f): Form<LoginForm>,
) -> Result<Response, ApiError> {
    let next = local_path(f.next.as_deref().or(q.next.as_deref()));
    let Some(cred) = tokens::verify(state.container(), f.token.trim()).await? else {
        let back = format!("/login?failed=1&next={}", form_urlencode(&next));
        return Ok(Redirect::to(&back).into_response());
    };
    let ttl = state.config().session_ttl;
    let secret = tokens::open_session(state.container(), &cred, ttl).await?;
    let cookie = format!(
        "{SESSION_COOKIE}={secret}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{}",
        ttl.as_secs(),
        if state.config().secure_cookies {
            "; Secure"
        } else {
            ""
        }
    );
    let mut response = Redirect::to(&next).into_response();
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, v);
    }
    Ok(response)
}

async fn logout(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    if let Some(secret) = cookie(&headers, SESSION_COOKIE) {
        tokens::close_session(state.container(), secret).await?;
    }
    let mut response = Redirect::to("/login").into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static("lockstep_session=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"),
    );
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::local_path;

    #[test]
    fn login_redirects_only_to_paths_on_this_server() {
        assert_eq!(local_path(Some("/plans/1?x=2")), "/plans/1?x=2");
        for away in [
            "//evil.example/",
            "/\\evil.example",
            "https://evil.example/",
            "plans",
        ] {
            assert_eq!(local_path(Some(away)), "/", "{away}");
        }
        assert_eq!(local_path(None), "/");
    }
}
