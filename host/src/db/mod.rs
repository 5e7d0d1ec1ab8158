//! The database handle: one sqlx pool, the backend it talks to, and the few
//! SQL fragments that differ between SQLite and PostgreSQL. The pool is
//! crate-private: everything outside the crate goes through the lock service
//! and the store.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use std::sync::Arc;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, ConnectOptions, Connection, Executor};

mod inline;
mod kept;
pub mod stats;
mod write;

use write::Writer;
pub(crate) use write::{Open, WriteTx};

/// Opening the database failed.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The URL names no supported backend.
    #[error("unsupported database url `{0}`: use sqlite://PATH or postgres://USER@HOST/DB")]
    UnsupportedUrl(String),
    /// Connecting failed.
    #[error("cannot connect to {url}: {source}")]
    Connect {
        /// The URL (password redacted).
        url: String,
        /// The driver's error.
        #[source]
        source: sqlx::Error,
    },
    /// Running the embedded migrations failed.
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The SQLite file's directory could not be created.
    #[error("cannot create the database directory {}: {source}", path.display())]
    CreateDir {
        /// The directory.
        path: std::path::PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// Which database a [`Db`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// Embedded SQLite file (the default).
    Sqlite,
    /// PostgreSQL server, shared by many hosts.
    Postgres,
}

impl Backend {
    /// SQL expression for "now" in milliseconds since the epoch, on the
    /// database's clock.
    pub fn now_ms(self) -> &'static str {
        match self {
            Backend::Sqlite => "CAST(unixepoch('subsec') * 1000 AS INTEGER)",
            Backend::Postgres => "CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT)",
        }
    }

    /// The SQL function that returns the larger of two values.
    pub fn greatest(self) -> &'static str {
        match self {
            Backend::Sqlite => "MAX",
            Backend::Postgres => "GREATEST",
        }
    }
}

/// A PostgreSQL connection idle at least this long is pinged before use.
pub const PG_PING_IDLE: Duration = Duration::from_secs(1);

/// Most PostgreSQL connections a process writes through at once (reads use
/// a pool of as many more).
pub const PG_WRITERS: usize = 8;

/// How long a SQLite connection waits for another writer before failing.
pub const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The settings every SQLite connection gets: the busy timeout, WAL, and
/// `synchronous = NORMAL` (durable at each WAL checkpoint, safe against
/// corruption). Public so that tools opening their own connection to the
/// same file (benchmark baselines, test checkers) behave the same.
pub fn sqlite_pragmas() -> String {
    format!(
        "PRAGMA busy_timeout = {}; PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;",
        SQLITE_BUSY_TIMEOUT.as_millis()
    )
}

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// What a process's writes go through.
#[derive(Debug, Clone)]
enum Writes {
    /// SQLite: the one connection every write goes through.
    Single(Arc<Writer>),
    /// PostgreSQL: the connections the host keeps for writes.
    Kept(Arc<kept::Kept>),
}

/// A connected, migrated database.
#[derive(Debug, Clone)]
pub struct Db {
    /// The connection pool (crate-private: SQL lives in `locks` and
    /// `store`). It serves reads (and migrations); writes go through
    /// `writer` (SQLite) or `kept` (PostgreSQL).
    pub(crate) pool: AnyPool,
    /// What writes go through.
    writes: Writes,
    /// The backend behind the pool.
    pub backend: Backend,
}

impl Db {
    /// Connect to `url` (`sqlite://PATH` or `postgres://…`), creating a
    /// SQLite file and its directory if needed, and run the embedded
    /// migrations.
    pub async fn connect(url: &str) -> Result<Db, DbError> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Backend::Postgres
        } else {
            return Err(DbError::UnsupportedUrl(url.to_string()));
        };
        let url = match backend {
            Backend::Sqlite => prepare_sqlite_url(url)?,
            Backend::Postgres => url.to_string(),
        };
        let options = AnyConnectOptions::from_str(&url)
            .map_err(|e| DbError::Connect {
                url: redact(&url),
                source: e,
            })?
            .disable_statement_logging();
        let pool_options = pool_options(backend);
        let pool = pool_options
            .connect_with(options.clone())
            .await
            .map_err(|e| DbError::Connect {
                url: redact(&url),
                source: e,
            })?;
        let writes = match backend {
            Backend::Sqlite => Writes::Single(Arc::new(Writer::new(&url))),
            Backend::Postgres => Writes::Kept(kept::Kept::new(options, PG_WRITERS)),
        };
        let db = Db {
            pool,
            writes,
            backend,
        };
        db.migrate().await?;
        Ok(db)
    }

    async fn migrate(&self) -> Result<(), DbError> {
        let migrator = match self.backend {
            Backend::Sqlite => &SQLITE_MIGRATIONS,
            Backend::Postgres => &POSTGRES_MIGRATIONS,
        };
        // Several processes may open a fresh SQLite file at once; SQLite has
        // no migration lock, so the loser of the race retries and finds the
        // migration applied. PostgreSQL takes an advisory lock inside sqlx.
        let mut attempt = 0;
        loop {
            match migrator.run(&self.pool).await {
                Ok(()) => return Ok(()),
                Err(e) if attempt < 10 => {
                    attempt += 1;
                    tracing::debug!("migration attempt {attempt} failed: {e}; retrying");
                    tokio::time::sleep(Duration::from_millis(50 * attempt)).await;
                }
                Err(e) => return Err(DbError::Migrate(e)),
            }
        }
    }

    /// SQL expression for "now" in milliseconds since the epoch, on the
    /// database's clock.
    pub fn now_ms(&self) -> &'static str {
        self.backend.now_ms()
    }

    /// The SQL function that returns the larger of two values.
    pub fn greatest(&self) -> &'static str {
        self.backend.greatest()
    }

    /// Close the pool: wait for its connections to finish and close them.
    pub async fn close(&self) {
        match &self.writes {
            Writes::Single(writer) => writer.close().await,
            Writes::Kept(kept) => kept.close().await,
        }
        self.pool.close().await;
    }

    /// The database clock, in milliseconds since the epoch.
    pub async fn now(&self) -> Result<i64, sqlx::Error> {
        sqlx::query_scalar::<_, i64>(&format!("SELECT {}", self.now_ms()))
            .fetch_one(self.reader())
            .await
    }
}

/// The pool's settings for `backend`.
fn pool_options(backend: Backend) -> AnyPoolOptions {
    let options = match backend {
        Backend::Sqlite => AnyPoolOptions::new()
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(30))
            // A SQLite connection is an open file in this process:
            // there is no server to lose it, so the liveness ping sqlx
            // would send to the connection's worker thread before every
            // use (a full round trip) buys nothing.
            .test_before_acquire(false)
            .after_connect(|conn, _| {
                Box::pin(async move {
                    conn.execute(sqlite_pragmas().as_str()).await?;
                    Ok(())
                })
            }),
        Backend::Postgres => AnyPoolOptions::new()
            .max_connections(8)
            .min_connections(0)
            .acquire_timeout(Duration::from_secs(10))
            // Reads. A pooled connection that sat idle is checked before
            // use, so that one the server dropped meanwhile (restart,
            // pg_terminate_backend, an idle timeout) is replaced
            // instead of failing the next read. One in
            // constant use was just answered by the server (and
            // checked by the pool on its return): pinging it again
            // would double the round trips of every statement.
            .test_before_acquire(false)
            .before_acquire(|conn, meta| {
                Box::pin(async move {
                    if meta.idle_for < PG_PING_IDLE {
                        return Ok(true);
                    }
                    stats::record(1, 0);
                    Ok(conn.ping().await.is_ok())
                })
            })
            .idle_timeout(Duration::from_secs(60)),
    };
    // sqlx pings every connection it takes back (a round trip we
    // cannot turn off): count it.
    options.after_release(|_, _| {
        Box::pin(async {
            stats::record(1, 0);
            Ok(true)
        })
    })
}

/// Default database URL for a project: `<project>/.lockstep/lockstep.db`.
pub fn default_sqlite_url(project: &Path) -> String {
    format!(
        "sqlite://{}",
        project.join(".lockstep").join("lockstep.db").display()
    )
}

fn prepare_sqlite_url(url: &str) -> Result<String, DbError> {
    let rest = url
        .trim_start_matches("sqlite://")
        .trim_start_matches("sqlite:");
    let (path, query) = match rest.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (rest, None),
    };
    if path != ":memory:" && !path.is_empty() {
        if let Some(parent) = Path::new(path).parent() {
            if !parent.as_os_str().is_empty() {
                std::fs::create_dir_all(parent).map_err(|source| DbError::CreateDir {
                    path: parent.to_path_buf(),
                    source,
                })?;
            }
        }
    }
    let query = match query {
        Some(q) if q.contains("mode=") => q.to_string(),
        Some(q) => format!("{q}&mode=rwc"),
        None => "mode=rwc".to_string(),
    };
    Ok(format!("sqlite://{path}?{query}"))
}

/// Hide a password in a URL before it goes into an error message.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let creds = &url[scheme_end + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme_end + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_passwords() {
        assert_eq!(redact("postgres://u:secret@h/db"), "postgres://u:***@h/db");
        assert_eq!(redact("postgres://u@h/db"), "postgres://u@h/db");
    }

    #[test]
    fn sqlite_urls_get_create_mode() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a/b.db");
        let url = prepare_sqlite_url(&format!("sqlite://{}", p.display())).unwrap();
        assert!(url.ends_with("?mode=rwc"));
        assert!(dir.path().join("a").is_dir());
    }
}
