//! Who is asking, and may they: scopes, the [`Principal`] of a request and
//! the extractors a route names to require a scope ([`CanRead`],
//! [`CanOperate`], [`CanAdmin`]), and the CSRF guard for cookie sessions.
//!
//! A request authenticates with `Authorization: Bearer TOKEN`, with the
//! dashboard's session cookie, or — when the operator configured one — with
//! the trusted user header a single sign-on proxy sets. The cookie and the
//! header are sent by a browser on its own, so every unsafe request
//! (POST, PUT, PATCH, DELETE) that relies on them must also carry the CSRF
//! token of the session ([`csrf_token`]): as the `X-CSRF-Token` header or
//! the form field `csrf_token`. A bearer token is never sent by a browser
//! unasked and needs none.

use std::fmt;
use std::str::FromStr;

use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::error::ApiError;
use super::tokens;
use super::AppState;

/// The cookie that carries a dashboard session.
pub const SESSION_COOKIE: &str = "lockstep_session";
/// The header that carries the CSRF token.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// The form field that carries the CSRF token.
pub const CSRF_FIELD: &str = "csrf_token";

/// What a credential may do; each scope includes the ones below it.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// See plans, diffs, events, locks, workers, projects, metrics.
    Read,
    /// Also submit plans and approve, cancel, retry or revert them.
    Operate,
    /// Also register projects, force-release locks, read the audit log.
    Admin,
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Scope::Read => "read",
            Scope::Operate => "operate",
            Scope::Admin => "admin",
        })
    }
}

impl FromStr for Scope {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "read" => Ok(Scope::Read),
            "operate" => Ok(Scope::Operate),
            "admin" => Ok(Scope::Admin),
            _ => Err(format!("unknown scope `{s}` (read, operate or admin)")),
        }
    }
}

/// How a request authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Via {
    /// `Authorization: Bearer`, with the token's id.
    Bearer(String),
    /// The session cookie; the session's CSRF token.
    Session(String),
    /// The trusted user header of a proxy; the user's CSRF token.
    Proxy(String),
}

/// The caller of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// Who: a token's name, or the proxy's user name.
    pub who: String,
    /// What they may do.
    pub scope: Scope,
    /// How they authenticated.
    pub via: Via,
}

impl Principal {
    /// The CSRF token forms and scripts of this caller's pages must send
    /// (none for a bearer token, which needs none).
    pub fn csrf_token(&self) -> Option<&str> {
        match &self.via {
            Via::Session(t) | Via::Proxy(t) => Some(t),
            Via::Bearer(_) => None,
        }
    }

    /// `Ok` if the caller has `need`, else [`ApiError::Forbidden`].
    pub fn require(&self, need: Scope) -> Result<(), ApiError> {
        if self.scope >= need {
            Ok(())
        } else {
            Err(ApiError::Forbidden {
                need,
                have: self.scope,
            })
        }
    }
}

/// The CSRF token of the current session, for templates (`None` for a
/// bearer token).
pub fn csrf_token(principal: &Principal) -> Option<&str> {
    principal.csrf_token()
}

/// The CSRF token bound to a session secret: derived, never stored, and
/// not derivable from the stored hash of the secret.
pub(crate) fn session_csrf(session_secret: &str) -> String {
    hex::encode(Sha256::digest(format!("lockstep-csrf:{session_secret}")))
}

/// The CSRF token of a proxy-authenticated user: bound to the server's
/// secret, so it changes when the server restarts.
fn proxy_csrf(server_secret: &str, who: &str) -> String {
    hex::encode(Sha256::digest(format!(
        "lockstep-proxy-csrf:{server_secret}:{who}"
    )))
}

/// Why a request was not let through: an API error, or a browser sent to
/// the login page.
#[derive(Debug)]
pub enum AuthRejection {
    /// Answer with this error.
    Api(ApiError),
    /// A browser without a session: to `/login?next=PATH`.
    Login(String),
}

impl From<ApiError> for AuthRejection {
    fn from(e: ApiError) -> Self {
        AuthRejection::Api(e)
    }
}

impl IntoResponse for AuthRejection {
    fn into_response(self) -> Response {
        match self {
            AuthRejection::Api(e) => e.into_response(),
            AuthRejection::Login(next) => {
                let next = form_urlencode(&next);
                Redirect::to(&format!("/login?next={next}")).into_response()
            }
        }
    }
}

/// Percent-encode everything but unreserved characters and `/`.
pub(crate) fn form_urlencode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// The value of cookie `name` in the request's `Cookie` headers.
pub(crate) fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim())
        .filter(|v| !v.is_empty())
}

/// Whether a person's browser asked for a page (not an API client).
fn wants_html(parts: &Parts) -> bool {
    !parts.uri.path().starts_with("/api/")
        && parts
            .headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.contains("text/html"))
}

/// The trusted user header's value, when the operator configured one.
fn proxy_user<'a>(state: &AppState, headers: &'a HeaderMap) -> Option<&'a str> {
    let name = state.config().trusted_user_header.as_deref()?;
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

/// The scope of a user the proxy authenticated: the configured scope,
/// raised to the highest scope one of their groups (the trusted groups
/// header, when configured) grants.
fn proxy_scope(state: &AppState, headers: &HeaderMap) -> Scope {
    let config = state.config();
    let groups = config
        .trusted_groups_header
        .as_deref()
        .into_iter()
        .flat_map(|name| headers.get_all(name))
        .filter_map(|v| v.to_str().ok());
    scope_of_groups(
        config.trusted_user_scope,
        &config.trusted_group_scopes,
        groups,
    )
}

/// `base`, raised to the highest scope `granted` gives one of the groups
/// in `values` (each a comma-separated list; names match exactly).
fn scope_of_groups<'a>(
    base: Scope,
    granted: &[(String, Scope)],
    values: impl Iterator<Item = &'a str>,
) -> Scope {
    values
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter_map(|g| granted.iter().find(|(name, _)| name == g).map(|(_, s)| *s))
        .fold(base, Scope::max)
}

async fn authenticate(parts: &Parts, state: &AppState) -> Result<Principal, AuthRejection> {
    let container = state.container();
    if let Some(auth) = parts.headers.get(header::AUTHORIZATION) {
        let token = auth
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .ok_or(ApiError::Unauthenticated)?;
        let cred = tokens::verify(container, token)
            .await?
            .ok_or(ApiError::Unauthenticated)?;
        return Ok(Principal {
            who: cred.name,
            scope: cred.scope,
            via: Via::Bearer(cred.token_id),
        });
    }
    if let Some(user) = proxy_user(state, &parts.headers) {
        return Ok(Principal {
            who: user.to_string(),
            scope: proxy_scope(state, &parts.headers),
            via: Via::Proxy(proxy_csrf(state.secret(), user)),
        });
    }
    if let Some(secret) = cookie(&parts.headers, SESSION_COOKIE) {
        if let Some(cred) = tokens::session(container, secret).await? {
            return Ok(Principal {
                who: cred.name,
                scope: cred.scope,
                via: Via::Session(session_csrf(secret)),
            });
        }
    }
    if wants_html(parts) {
        let next = parts
            .uri
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .to_string();
        return Err(AuthRejection::Login(next));
    }
    Err(ApiError::Unauthenticated.into())
}

impl FromRequestParts<AppState> for Principal {
    type Rejection = AuthRejection;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        if let Some(p) = parts.extensions.get::<Principal>() {
            return Ok(p.clone());
        }
        let principal = authenticate(parts, state).await?;
        parts.extensions.insert(principal.clone());
        Ok(principal)
    }
}

macro_rules! scope_extractor {
    ($(#[$doc:meta])* $name:ident, $scope:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone)]
        pub struct $name(pub Principal);

        impl FromRequestParts<AppState> for $name {
            type Rejection = AuthRejection;

            async fn from_request_parts(
                parts: &mut Parts,
                state: &AppState,
            ) -> Result<Self, Self::Rejection> {
                let p = Principal::from_request_parts(parts, state).await?;
                p.require($scope)?;
                Ok($name(p))
            }
        }
    };
}

scope_extractor!(
    /// A caller with at least the `read` scope.
    CanRead,
    Scope::Read
);
scope_extractor!(
    /// A caller with at least the `operate` scope.
    CanOperate,
    Scope::Operate
);
scope_extractor!(
    /// A caller with the `admin` scope.
    CanAdmin,
    Scope::Admin
);

/// The CSRF token an ambient credential (cookie, proxy header) of this
/// request expects, or `None` when the request carries none (a bearer
/// token, or nothing: the route's extractor then refuses it).
fn expected_csrf(state: &AppState, headers: &HeaderMap) -> Option<String> {
    if headers.contains_key(header::AUTHORIZATION) {
        return None;
    }
    if let Some(user) = proxy_user(state, headers) {
        return Some(proxy_csrf(state.secret(), user));
    }
    cookie(headers, SESSION_COOKIE).map(session_csrf)
}

fn is_form(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"))
}

/// Compare without stopping at the first difference.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// Middleware: refuse an unsafe request that relies on a cookie or proxy
/// header and lacks the matching CSRF token (403, kind `csrf`). A form body
/// is read (within the body limit) to find `csrf_token`, then handed on.
pub async fn csrf_guard(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let safe = matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    // Logging in is how a browser gets a session in the first place.
    if safe || req.uri().path() == "/login" {
        return next.run(req).await;
    }
    let Some(expected) = expected_csrf(&state, req.headers()) else {
        return next.run(req).await;
    };
    if let Some(sent) = req.headers().get(CSRF_HEADER).and_then(|v| v.to_str().ok()) {
        return if same(sent, &expected) {
            next.run(req).await
        } else {
            ApiError::Csrf.into_response()
        };
    }
    if !is_form(req.headers()) {
        return ApiError::Csrf.into_response();
    }
    let (parts, body) = req.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, state.config().body_limit).await else {
        return (StatusCode::PAYLOAD_TOO_LARGE, "request body too large").into_response();
    };
    let sent = form_field(&bytes, CSRF_FIELD);
    if !sent.is_some_and(|s| same(&s, &expected)) {
        return ApiError::Csrf.into_response();
    }
    next.run(Request::from_parts(parts, axum::body::Body::from(bytes)))
        .await
}

/// The first value of `name` in a urlencoded form.
fn form_field(body: &[u8], name: &str) -> Option<String> {
    serde_urlencoded::from_bytes::<Vec<(String, String)>>(body)
        .ok()?
        .into_iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_scope_includes_the_ones_below_it() {
        assert!(Scope::Read < Scope::Operate && Scope::Operate < Scope::Admin);
        for s in [Scope::Read, Scope::Operate, Scope::Admin] {
            assert_eq!(s.to_string().parse::<Scope>(), Ok(s));
        }
        assert!("root".parse::<Scope>().is_err());
        let p = |scope| Principal {
            who: "x".into(),
            scope,
            via: Via::Bearer("t".into()),
        };
        assert!(p(Scope::Operate).require(Scope::Read).is_ok());
        assert!(p(Scope::Operate).require(Scope::Admin).is_err());
    }

    #[test]
    fn a_proxied_user_gets_the_highest_scope_of_their_groups_and_never_less_than_the_base() {
        let granted = vec![
            ("ops".to_string(), Scope::Admin),
            ("devs".to_string(), Scope::Operate),
        ];
        let of = |base, values: &[&str]| scope_of_groups(base, &granted, values.iter().copied());
        assert_eq!(of(Scope::Read, &[]), Scope::Read);
        assert_eq!(of(Scope::Read, &["devs"]), Scope::Operate);
        assert_eq!(of(Scope::Read, &["staff, devs", "ops"]), Scope::Admin);
        assert_eq!(of(Scope::Read, &[" ops ,x"]), Scope::Admin);
        // Names match exactly: no prefix, suffix or case games.
        assert_eq!(of(Scope::Read, &["devops,Ops,ops2,opsx"]), Scope::Read);
        // A group never lowers the base.
        assert_eq!(of(Scope::Admin, &["devs"]), Scope::Admin);
        assert_eq!(
            scope_of_groups(Scope::Operate, &[], ["ops"].into_iter()),
            Scope::Operate
        );
    }

    #[test]
    fn the_session_cookie_is_found_among_others() {
        let mut h = HeaderMap::new();
        h.append(
            header::COOKIE,
            "a=1; lockstep_session=abc ; b=2".parse().unwrap(),
        );
        assert_eq!(cookie(&h, SESSION_COOKIE), Some("abc"));
        assert_eq!(cookie(&h, "lockstep"), None);
        let mut empty = HeaderMap::new();
        empty.append(header::COOKIE, "lockstep_session=".parse().unwrap());
        assert_eq!(cookie(&empty, SESSION_COOKIE), None);
    }

    #[test]
    fn csrf_tokens_are_bound_to_their_secret() {
        assert_eq!(session_csrf("s1"), session_csrf("s1"));
        assert_ne!(session_csrf("s1"), session_csrf("s2"));
        // Not the stored hash of the session secret.
        assert_ne!(session_csrf("s1"), super::tokens::hash("s1"));
        assert_ne!(proxy_csrf("k", "alice"), proxy_csrf("k", "bob"));
        assert!(same("abc", "abc") && !same("abc", "abd") && !same("abc", "ab"));
    }

    #[test]
    fn the_csrf_field_is_read_from_a_form() {
        assert_eq!(
            form_field(b"a=1&csrf_token=x%2By&b=2", CSRF_FIELD).as_deref(),
            Some("x+y")
        );
        assert_eq!(form_field(b"a=1", CSRF_FIELD), None);
        assert_eq!(form_urlencode("/p?x=1&y"), "/p%3Fx%3D1%26y");
    }
}
