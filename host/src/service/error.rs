//! One error shape for every route: `application/problem+json` (RFC 9457)
//! with a `kind` a client can match on. A lock conflict is 409 and carries
//! the holder.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::auth::Scope;
use crate::fleet::FleetError;
use crate::lifecycle::LifecycleError;
use crate::locks::{LockConflict, LockError};
use crate::store::StoreError;

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No credentials, or credentials that are not valid (401).
    #[error("authentication required: send `Authorization: Bearer TOKEN` or log in")]
    Unauthenticated,
    /// Valid credentials whose scope is too low (403).
    #[error("this needs the `{need}` scope; the credentials have `{have}`")]
    Forbidden {
        /// The scope the route needs.
        need: Scope,
        /// The scope the caller has.
        have: Scope,
    },
    /// A cookie-authenticated unsafe request without the session's CSRF
    /// token (403).
    #[error("missing or wrong CSRF token: send the session's token as `X-CSRF-Token` or the form field `csrf_token`")]
    Csrf,
    /// Nothing by that name (404).
    #[error("{0}")]
    NotFound(String),
    /// The request is malformed or asks for something refused (400/422).
    #[error("{message}")]
    Invalid {
        /// HTTP status (400 or 422).
        status: StatusCode,
        /// What is wrong.
        message: String,
    },
    /// The resource's state does not allow it (409).
    #[error("{0}")]
    Conflict(String),
    /// Another session holds a lock the request needs (409, with the holder).
    #[error("{0}")]
    Locked(Box<LockConflict>),
    /// A plan's operation failed.
    #[error(transparent)]
    Lifecycle(#[from] LifecycleError),
    /// A fleet operation failed.
    #[error(transparent)]
    Fleet(#[from] FleetError),
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The lock service failed.
    #[error(transparent)]
    Lock(#[from] LockError),
    /// The server is shutting down.
    #[error("the server is shutting down")]
    Unavailable,
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        ApiError::Store(StoreError::Database(e))
    }
}

impl ApiError {
    /// A 400 with `message`.
    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError::Invalid {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
        }
    }

    /// A 422 with `message`.
    pub fn unprocessable(message: impl Into<String>) -> Self {
        ApiError::Invalid {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            message: message.into(),
        }
    }

    /// The lock conflict inside this error, if that is what it is.
    pub fn lock_conflict(&self) -> Option<&LockConflict> {
        match self {
            ApiError::Locked(c)
            | ApiError::Lock(LockError::Conflict(c))
            | ApiError::Lifecycle(LifecycleError::LockConflict(c))
            | ApiError::Fleet(FleetError::Lifecycle(LifecycleError::LockConflict(c))) => Some(c),
            _ => None,
        }
    }

    /// The HTTP status and the machine-readable kind.
    pub fn status_and_kind(&self) -> (StatusCode, &'static str) {
        if self.lock_conflict().is_some() {
            return (StatusCode::CONFLICT, "lock-conflict");
        }
        match self {
            ApiError::Unauthenticated => (StatusCode::UNAUTHORIZED, "unauthenticated"),
            ApiError::Forbidden { .. } => (StatusCode::FORBIDDEN, "forbidden"),
            ApiError::Csrf => (StatusCode::FORBIDDEN, "csrf"),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "not-found"),
            ApiError::Invalid { status, .. } => (*status, "invalid"),
            ApiError::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            ApiError::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            ApiError::Lifecycle(e) | ApiError::Fleet(FleetError::Lifecycle(e)) => lifecycle_kind(e),
            ApiError::Fleet(FleetError::NotQueued(_)) => (StatusCode::CONFLICT, "not-queued"),
            ApiError::Store(StoreError::NotFound(_))
            | ApiError::Fleet(FleetError::Store(StoreError::NotFound(_))) => {
                (StatusCode::NOT_FOUND, "not-found")
            }
            _ => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }
}

fn lifecycle_kind(e: &LifecycleError) -> (StatusCode, &'static str) {
    match e {
        LifecycleError::NotFound(_) | LifecycleError::Store(StoreError::NotFound(_)) => {
            (StatusCode::NOT_FOUND, "not-found")
        }
        LifecycleError::InvalidTransition(_) => (StatusCode::CONFLICT, "invalid-transition"),
        LifecycleError::InvalidAction(_) => (StatusCode::UNPROCESSABLE_ENTITY, "invalid-action"),
        LifecycleError::ApplyDrift(_) => (StatusCode::CONFLICT, "apply-drift"),
        LifecycleError::Interrupted => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
        _ => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
    }
}

/// The body of every error response.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Problem {
    /// `about:blank`-style type URI naming the kind.
    #[serde(rename = "type")]
    pub type_uri: String,
    /// Short title: the HTTP reason phrase.
    pub title: String,
    /// HTTP status.
    pub status: u16,
    /// What happened and what to do.
    pub detail: String,
    /// Machine-readable kind: `unauthenticated`, `forbidden`, `csrf`,
    /// `not-found`, `invalid`, `conflict`, `lock-conflict`,
    /// `invalid-transition`, `apply-drift`, `not-queued`, `unavailable`,
    /// `internal`.
    pub kind: String,
    /// For `lock-conflict`: who holds the lock.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub holder: Option<LockConflict>,
}

impl ApiError {
    /// The problem document this error is answered with.
    pub fn problem(&self) -> Problem {
        let (status, kind) = self.status_and_kind();
        let detail = if status == StatusCode::INTERNAL_SERVER_ERROR {
            tracing::error!(error = %self, "request failed");
            "internal error (the server's log has the details)".to_string()
        } else {
            self.to_string()
        };
        Problem {
            type_uri: format!("urn:lockstep:problem:{kind}"),
            title: status.canonical_reason().unwrap_or("error").to_string(),
            status: status.as_u16(),
            detail,
            kind: kind.to_string(),
            holder: self.lock_conflict().cloned(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let problem = self.problem();
        let status =
            StatusCode::from_u16(problem.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = (status, axum::Json(problem)).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if status == StatusCode::UNAUTHORIZED {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}
