//! API tokens and dashboard sessions as the database keeps them: only the
//! SHA-256 of each secret is stored (the secrets are 256 random bits, so a
//! plain hash is as good as a slow one), a token is shown once when it is
//! created, and a session lives until its expiry or its token's revocation.

use rand::RngCore;
use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::Row;

use super::auth::Scope;
use super::error::ApiError;
use crate::Container;

/// What every token starts with (so that a leaked one is recognisable).
pub const TOKEN_PREFIX: &str = "lst_";

/// A token as `tokens list` shows it (never the secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct TokenInfo {
    /// The token's id (for `tokens revoke`).
    pub id: String,
    /// The name given at creation.
    pub name: String,
    /// Its scope.
    pub scope: Scope,
    /// Created (ms since the epoch).
    pub created_at: i64,
    /// Last used to authenticate a request or a login (ms), if ever.
    pub last_used_at: Option<i64>,
    /// Revoked (ms), if it was.
    pub revoked_at: Option<i64>,
}

/// A token just created: the only time its secret is seen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NewToken {
    /// Its id.
    pub id: String,
    /// The secret to hand to the client.
    pub token: String,
    /// Its scope.
    pub scope: Scope,
}

/// Whose credentials a token or session is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credential {
    /// The token's id.
    pub token_id: String,
    /// The token's name.
    pub name: String,
    /// Its scope.
    pub scope: Scope,
}

/// 32 random bytes as hex.
pub(crate) fn random_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// The hex SHA-256 of a secret.
pub(crate) fn hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Create a token with `scope`, named `name`.
pub async fn create(container: &Container, name: &str, scope: Scope) -> Result<NewToken, ApiError> {
    let db = container.store().db();
    let id = uuid::Uuid::new_v4().simple().to_string()[..12].to_string();
    let token = format!("{TOKEN_PREFIX}{}", random_secret());
    sqlx::query(&format!(
        "INSERT INTO api_tokens (id, name, scope, hash, created_at) VALUES ($1, $2, $3, $4, {})",
        db.now_ms()
    ))
    .bind(&id)
    .bind(name)
    .bind(scope.to_string())
    .bind(hash(&token))
    .execute(&mut db.writer().await?)
    .await?;
    Ok(NewToken { id, token, scope })
}

/// Every token, newest first.
pub async fn list(container: &Container) -> Result<Vec<TokenInfo>, ApiError> {
    let rows = sqlx::query(
        "SELECT id, name, scope, created_at, last_used_at, revoked_at FROM api_tokens ORDER BY created_at DESC, id",
    )
    .fetch_all(&container.store().db().pool)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(TokenInfo {
                id: r.try_get("id")?,
                name: r.try_get("name")?,
                scope: parse_scope(&r.try_get::<String, _>("scope")?)?,
                created_at: r.try_get("created_at")?,
                last_used_at: r.try_get("last_used_at")?,
                revoked_at: r.try_get("revoked_at")?,
            })
        })
        .collect()
}

fn parse_scope(s: &str) -> Result<Scope, ApiError> {
    s.parse().map_err(|_| {
        ApiError::Store(crate::store::StoreError::corrupt(
            "token scope",
            format!("unknown scope `{s}`"),
        ))
    })
}

/// Revoke a token (and with it every session it opened). `false` when no
/// live token has that id.
pub async fn revoke(container: &Container, id: &str) -> Result<bool, ApiError> {
    let db = container.store().db();
    let n = sqlx::query(&format!(
        "UPDATE api_tokens SET revoked_at = {} WHERE id = $1 AND revoked_at IS NULL",
        db.now_ms()
    ))
    .bind(id)
    .execute(&mut db.writer().await?)
    .await?
    .rows_affected();
    sqlx::query("DELETE FROM api_sessions WHERE token_id = $1")
        .bind(id)
        .execute(&mut db.writer().await?)
        .await?;
    Ok(n > 0)
}

/// The live token whose secret is `token`, if any. Its `last_used_at` is
/// brought up to date at most once a minute (a read does not write).
pub async fn verify(container: &Container, token: &str) -> Result<Option<Credential>, ApiError> {
    let db = container.store().db();
    let row = sqlx::query(&format!(
        "SELECT id, name, scope, {} - COALESCE(last_used_at, 0) AS idle
         FROM api_tokens WHERE hash = $1 AND revoked_at IS NULL",
        db.now_ms()
    ))
    .bind(hash(token))
    .fetch_optional(&db.pool)
    .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let found = credential(&row)?;
    if row.try_get::<i64, _>("idle")? > 60_000 {
        sqlx::query(&format!(
            "UPDATE api_tokens SET last_used_at = {} WHERE id = $1",
            db.now_ms()
        ))
        .bind(&found.token_id)
        .execute(&mut db.writer().await?)
        .await?;
    }
    Ok(Some(found))
}

fn credential(r: &sqlx::any::AnyRow) -> Result<Credential, ApiError> {
    Ok(Credential {
        token_id: r.try_get("id")?,
        name: r.try_get("name")?,
        scope: parse_scope(&r.try_get::<String, _>("scope")?)?,
    })
}

/// Open a session for `who` lasting `ttl`; returns its secret (the cookie's
/// value). Expired sessions are swept on the way.
pub async fn open_session(
    container: &Container,
    who: &Credential,
    ttl: std::time::Duration,
) -> Result<String, ApiError> {
    let db = container.store().db();
    let now = db.now_ms();
    sqlx::query(&format!(
        "DELETE FROM api_sessions WHERE expires_at <= {now}"
    ))
    .execute(&mut db.writer().await?)
    .await?;
    let secret = random_secret();
    let ttl_ms = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX / 2);
    sqlx::query(&format!(
        "INSERT INTO api_sessions (hash, who, token_id, scope, created_at, expires_at)
         VALUES ($1, $2, $3, $4, {now}, {now} + $5)"
    ))
    .bind(hash(&secret))
    .bind(&who.name)
    .bind(&who.token_id)
    .bind(who.scope.to_string())
    .bind(ttl_ms)
    .execute(&mut db.writer().await?)
    .await?;
    Ok(secret)
}

/// The credential behind a live session whose token is not revoked.
pub async fn session(container: &Container, secret: &str) -> Result<Option<Credential>, ApiError> {
    let db = container.store().db();
    let row = sqlx::query(&format!(
        "SELECT t.id, t.name, t.scope FROM api_sessions s JOIN api_tokens t ON t.id = s.token_id
         WHERE s.hash = $1 AND s.expires_at > {} AND t.revoked_at IS NULL",
        db.now_ms()
    ))
    .bind(hash(secret))
    .fetch_optional(&db.pool)
    .await?;
    row.map(|r| credential(&r)).transpose()
}

/// End a session.
pub async fn close_session(container: &Container, secret: &str) -> Result<(), ApiError> {
    sqlx::query("DELETE FROM api_sessions WHERE hash = $1")
        .bind(hash(secret))
        .execute(&mut container.store().db().writer().await?)
        .await?;
    Ok(())
}
