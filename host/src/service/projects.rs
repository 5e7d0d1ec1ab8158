//! Registered projects: the only directories a plan submitted over HTTP may
//! name. An admin registers one (`POST /api/v1/projects`, `lockstep
//! projects add PATH`); a submission names it by id or by its registered
//! path, and is refused unless it is also under one of the service's
//! projects roots. An API client never makes the server open a path of its
//! choosing.

use std::path::{Path, PathBuf};

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use sqlx::Row;

use super::auth::{CanAdmin, CanRead};
use super::error::ApiError;
use super::ops::audit;
use super::AppState;
use crate::Container;

/// A registered project.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ProjectInfo {
    /// Its id (the lock scope of `project:<id>`).
    pub id: String,
    /// Its canonical path on the server.
    pub path: String,
    /// Who registered it.
    pub added_by: String,
    /// When (ms since the epoch).
    pub added_at: i64,
}

/// `POST /api/v1/projects`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub struct NewProject {
    /// A directory on the server, under one of the projects roots.
    pub path: String,
}

pub(super) fn routes() -> Router<AppState> {
    Router::new().route("/api/v1/projects", get(list_route).post(add_route))
}

/// Whether `path` (canonical) lies under one of `roots` (canonical).
pub fn under_roots(path: &Path, roots: &[PathBuf]) -> bool {
    roots.iter().any(|r| path.starts_with(r))
}

/// Register the directory at `path` (made canonical; it must exist) on
/// behalf of `by`; with `roots`, only under one of them. Registering it
/// again returns the first registration.
pub async fn register(
    container: &Container,
    path: &Path,
    by: &str,
    roots: Option<&[PathBuf]>,
) -> Result<ProjectInfo, ApiError> {
    let path = {
        let path = path.to_path_buf();
        tokio::task::spawn_blocking(move || std::fs::canonicalize(&path).map(|p| (p.is_dir(), p)))
            .await
            .map_err(|e| ApiError::unprocessable(e.to_string()))?
    };
    let path = match path {
        Ok((true, p)) => p,
        Ok((false, p)) => {
            return Err(ApiError::unprocessable(format!(
                "{} is not a directory",
                p.display()
            )))
        }
        Err(e) => {
            return Err(ApiError::unprocessable(format!(
                "cannot open the project: {e}"
            )))
        }
    };
    if roots.is_some_and(|roots| !under_roots(&path, roots)) {
        return Err(ApiError::unprocessable(format!(
            "{} is not under this server's projects roots",
            path.display()
        )));
    }
    let text = path.to_string_lossy().into_owned();
    let id = crate::workspace::project_id(&path);
    let db = container.store().db();
    let conflict = match db.backend {
        crate::db::Backend::Sqlite => "ON CONFLICT DO NOTHING",
        crate::db::Backend::Postgres => "ON CONFLICT (id) DO NOTHING",
    };
    sqlx::query(&format!(
        "INSERT INTO projects (id, path, added_by, added_at) VALUES ($1, $2, $3, {}) {conflict}",
        db.now_ms()
    ))
    .bind(&id)
    .bind(&text)
    .bind(by)
    .execute(&mut db.writer().await?)
    .await?;
    find(container, &id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no project `{id}`")))
}

/// Every registered project, by path.
pub async fn list(container: &Container) -> Result<Vec<ProjectInfo>, ApiError> {
    let rows = sqlx::query("SELECT id, path, added_by, added_at FROM projects ORDER BY path")
        .fetch_all(&container.store().db().pool)
        .await?;
    rows.iter().map(project).collect()
}

/// The registered project whose id or registered path is `name`.
pub async fn find(container: &Container, name: &str) -> Result<Option<ProjectInfo>, ApiError> {
    let row =
        sqlx::query("SELECT id, path, added_by, added_at FROM projects WHERE id = $1 OR path = $1")
            .bind(name)
            .fetch_optional(&container.store().db().pool)
            .await?;
    row.as_ref().map(project).transpose()
}

fn project(r: &sqlx::any::AnyRow) -> Result<ProjectInfo, ApiError> {
    Ok(ProjectInfo {
        id: r.try_get("id")?,
        path: r.try_get("path")?,
        added_by: r.try_get("added_by")?,
        added_at: r.try_get("added_at")?,
    })
}

/// The directory a submission may plan on: a registered project under the
/// service's roots.
pub(super) async fn resolve(state: &AppState, name: &str) -> Result<PathBuf, ApiError> {
    let p = find(state.container(), name).await?.ok_or_else(|| {
        ApiError::unprocessable(format!(
            "`{name}` is not a registered project (an admin registers it with POST /api/v1/projects)"
        ))
    })?;
    let path = PathBuf::from(&p.path);
    if !under_roots(&path, &state.config().projects_roots) {
        return Err(ApiError::unprocessable(format!(
            "project `{}` is not under this server's projects roots",
            p.id
        )));
    }
    Ok(path)
}

/// Registered projects.
#[utoipa::path(get, path = "/api/v1/projects", tag = "projects",
    responses((status = 200, body = [ProjectInfo])), security(("bearer" = [])))]
pub(super) async fn list_route(
    _: CanRead,
    State(state): State<AppState>,
) -> Result<Json<Vec<ProjectInfo>>, ApiError> {
    Ok(Json(list(state.container()).await?))
}

/// Register a project (admin): a directory under one of the projects roots.
#[utoipa::path(post, path = "/api/v1/projects", tag = "projects", request_body = NewProject,
    responses((status = 201, body = ProjectInfo), (status = 422, body = super::Problem)),
    security(("bearer" = [])))]
pub(super) async fn add_route(
    CanAdmin(who): CanAdmin,
    State(state): State<AppState>,
    Json(body): Json<NewProject>,
) -> Result<(StatusCode, Json<ProjectInfo>), ApiError> {
    let roots = &state.config().projects_roots;
    let info = register(
        state.container(),
        Path::new(&body.path),
        &who.who,
        Some(roots),
    )
    .await?;
    audit(
        state.container(),
        &who.who,
        "project.register",
        &info.id,
        "",
        &info.path,
    )
    .await?;
    Ok((StatusCode::CREATED, Json(info)))
}
