//! The OpenAPI document, generated from the route and type annotations
//! (`GET /api/openapi.json`).

use axum::routing::get;
use axum::{Json, Router};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::AppState;

/// The API's description.
#[derive(OpenApi)]
#[openapi(
    info(title = "lockstep", description = "Plans, diffs, approvals, locks and workers of a lockstep fleet (docs/api.md)."),
    paths(
        super::health::healthz, super::health::readyz, super::metrics::metrics,
        super::plans::submit, super::plans::list, super::plans::show, super::plans::diff,
        super::plans::events_page, super::plans::plan_stream, super::plans::all_stream,
        super::actions::approve, super::actions::cancel, super::actions::retry,
        super::actions::revert, super::actions::bulk,
        super::ops::locks, super::ops::release, super::ops::workers, super::ops::audit_log,
        super::projects::list_route, super::projects::add_route, super::login::whoami,
    ),
    components(schemas(super::Problem, super::Scope)),
    modifiers(&Bearer),
)]
pub struct ApiDoc;

struct Bearer;

impl Modify for Bearer {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

pub(super) fn routes() -> Router<AppState> {
    Router::new().route("/api/openapi.json", get(document))
}

async fn document() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
