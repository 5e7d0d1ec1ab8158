//! The service: an HTTP API over the same [`Container`] the CLI and the
//! workers use (`lockstep serve`; docs/api.md).
//!
//! [`router`] gives an axum [`Router`] a platform can mount in its own app;
//! [`router_with`] merges more routes into it (the dashboard's pages) under
//! the same authentication, CSRF guard and limits. Every route but
//! `/healthz`, `/readyz` and `/api/openapi.json` needs credentials: a
//! bearer token, a session cookie (see [`auth`]) or a trusted proxy header.
//! The API calls the fleet ([`crate::fleet`]) and lifecycle services; it
//! holds no plan logic of its own.

mod actions;
pub mod auth;
pub mod dashboard;
mod error;
mod events;
mod health;
mod login;
mod metrics;
mod openapi;
mod ops;
mod plans;
pub mod projects;
pub mod tokens;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::Router;
use tokio_util::sync::CancellationToken;

pub use auth::{csrf_token, CanAdmin, CanOperate, CanRead, Principal, Scope, Via};
pub use error::{ApiError, Problem};
pub use events::event_stream;

use crate::Container;

/// How the service behaves; [`ServiceConfig::default`] is what
/// `lockstep serve` uses unless told otherwise.
#[derive(Debug, Clone)]
pub struct ServiceConfig {
    /// Directories under which projects may be registered and planned on.
    pub projects_roots: Vec<PathBuf>,
    /// Mark the session cookie `Secure` (serve behind TLS).
    pub secure_cookies: bool,
    /// A header a single sign-on proxy sets to the user's name; requests
    /// carrying it are authenticated as that user. The proxy must remove it
    /// from every client request.
    pub trusted_user_header: Option<String>,
    /// The scope of users authenticated by the trusted header (the least a
    /// proxied user gets).
    pub trusted_user_scope: Scope,
    /// A header the proxy sets to the user's groups (comma-separated), read
    /// only on requests authenticated by the trusted user header. The proxy
    /// must remove it from every client request too.
    pub trusted_groups_header: Option<String>,
    /// The scope each group grants: a proxied user gets the highest scope
    /// of their groups, never less than `trusted_user_scope`.
    pub trusted_group_scopes: Vec<(String, Scope)>,
    /// How long a dashboard session lasts.
    pub session_ttl: Duration,
    /// Largest request body accepted, in bytes.
    pub body_limit: usize,
    /// Largest page a list returns (a larger `limit` is lowered to it).
    pub max_page_size: usize,
    /// Longest time a request may take (event streams excepted).
    pub request_timeout: Duration,
    /// Cancelled when the server shuts down: event streams end.
    pub shutdown: CancellationToken,
}

impl Default for ServiceConfig {
    fn default() -> Self {
        ServiceConfig {
            projects_roots: Vec::new(),
            secure_cookies: false,
            trusted_user_header: None,
            trusted_user_scope: Scope::Read,
            trusted_groups_header: None,
            trusted_group_scopes: Vec::new(),
            session_ttl: Duration::from_secs(12 * 3600),
            body_limit: 1024 * 1024,
            max_page_size: 200,
            request_timeout: Duration::from_secs(30),
            shutdown: CancellationToken::new(),
        }
    }
}

/// What every handler gets: the container, the configuration, the event
/// hub and the server's counters. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    container: Arc<Container>,
    config: ServiceConfig,
    /// Random per process: binds the CSRF tokens of proxy users.
    secret: String,
    hub: events::Hub,
    counters: metrics::Counters,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

impl AppState {
    /// State over `container` with `config`.
    pub fn new(container: Arc<Container>, mut config: ServiceConfig) -> Self {
        config.projects_roots = config
            .projects_roots
            .iter()
            .map(|r| std::fs::canonicalize(r).unwrap_or_else(|_| r.clone()))
            .collect();
        let header = |h: Option<String>| {
            h.map(|h| h.trim().to_ascii_lowercase())
                .filter(|h| !h.is_empty())
        };
        config.trusted_user_header = header(config.trusted_user_header);
        config.trusted_groups_header = header(config.trusted_groups_header);
        AppState {
            inner: Arc::new(Inner {
                hub: events::Hub::new(container.clone(), config.shutdown.clone()),
                container,
                config,
                secret: tokens::random_secret(),
                counters: metrics::Counters::default(),
            }),
        }
    }

    /// The container.
    pub fn container(&self) -> &Container {
        &self.inner.container
    }

    /// The shared container.
    pub fn container_arc(&self) -> &Arc<Container> {
        &self.inner.container
    }

    /// The configuration.
    pub fn config(&self) -> &ServiceConfig {
        &self.inner.config
    }

    fn secret(&self) -> &str {
        &self.inner.secret
    }

    fn hub(&self) -> &events::Hub {
        &self.inner.hub
    }

    fn counters(&self) -> &metrics::Counters {
        &self.inner.counters
    }
}

/// The service's router with its own minimal login page: the API, login
/// and logout, health and metrics.
pub fn router(container: impl Into<Arc<Container>>, config: ServiceConfig) -> Router {
    router_with(container, config, login::page())
}

/// The service's router with `extra` routes merged in under the same
/// authentication, CSRF guard, body limit and timeout. `extra` must serve
/// `GET /login` (the form that posts a token to `POST /login`):
/// [`router`] passes a minimal one.
pub fn router_with(
    container: impl Into<Arc<Container>>,
    config: ServiceConfig,
    extra: Router<AppState>,
) -> Router {
    let state = AppState::new(container.into(), config);
    let config = state.config().clone();
    Router::new()
        .merge(health::routes())
        .merge(openapi::routes())
        .merge(login::routes())
        .merge(plans::routes())
        .merge(ops::routes())
        .merge(projects::routes())
        .merge(metrics::routes())
        .merge(extra)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::csrf_guard,
        ))
        .layer(axum::middleware::map_response(security_headers))
        .layer(DefaultBodyLimit::max(config.body_limit))
        // Times out the response's head only: an event stream, once
        // started, runs until the client leaves or the server stops.
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            config.request_timeout,
        ))
        .with_state(state)
}

/// Headers on every response: no framing by other sites (a page with an
/// Approve button must not be clickjacked), no MIME sniffing, no referrer
/// to other origins.
async fn security_headers(mut response: axum::response::Response) -> axum::response::Response {
    use axum::http::{header, HeaderValue};
    let h = response.headers_mut();
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    if !h.contains_key(header::CONTENT_SECURITY_POLICY) {
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static("frame-ancestors 'none'"),
        );
    }
    response
}

/// Serve `app` on `listener` until `shutdown` is cancelled; then stop
/// accepting, let requests in flight finish (event streams end at once)
/// and return.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
}
