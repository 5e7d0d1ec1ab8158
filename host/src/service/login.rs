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
}

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/login", post(login))
        .route("/logout", post(logout))
}

/// The minimal login page (`GET /login`) that [`super::router`] serves.
pub(super) fn page() -> Router<AppState> {
    Router::new().route("/login", get(form))
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
    Html(format!(
        "<!doctype html><meta charset=utf-8><title>lockstep — log in</title>\
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
