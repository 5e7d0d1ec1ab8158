//! A fresh database per test, on SQLite (a temp file) or PostgreSQL (a new
//! database on the server named by `LOCKSTEP_TEST_POSTGRES_URL`, default
//! `postgres://postgres@127.0.0.1:5432/test`, dropped when the test ends).

use std::path::PathBuf;

use sqlx::{Connection, Executor, PgConnection};

/// Which backend a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// Embedded SQLite file.
    Sqlite,
    /// PostgreSQL server.
    Postgres,
}

/// The server tests create their databases on.
pub fn postgres_admin_url() -> String {
    std::env::var("LOCKSTEP_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// A database that exists for one test.
#[derive(Debug)]
pub struct TestDb {
    /// URL to hand to lockstep.
    pub url: String,
    /// Scratch directory (holds the SQLite file; usable for projects).
    pub dir: tempfile::TempDir,
    pg_name: Option<String>,
}

impl TestDb {
    /// Create a fresh, empty database.
    pub async fn new(backend: Backend) -> TestDb {
        let dir = tempfile::tempdir().expect("temp dir");
        match backend {
            Backend::Sqlite => {
                let url = format!("sqlite://{}", dir.path().join("lockstep.db").display());
                TestDb {
                    url,
                    dir,
                    pg_name: None,
                }
            }
            Backend::Postgres => {
                let admin = postgres_admin_url();
                let name = format!(
                    "lockstep_t_{}",
                    &uuid::Uuid::new_v4().simple().to_string()[..16]
                );
                let mut conn = PgConnection::connect(&admin).await.unwrap_or_else(|e| {
                    panic!("PostgreSQL is required for this test and is not reachable at {admin}: {e}. Start it (see .ci/run) or set LOCKSTEP_TEST_POSTGRES_URL")
                });
                conn.execute(format!("CREATE DATABASE \"{name}\"").as_str())
                    .await
                    .expect("create database");
                let base = admin
                    .rsplit_once('/')
                    .map(|(b, _)| b.to_string())
                    .unwrap_or(admin.clone());
                TestDb {
                    url: format!("{base}/{name}"),
                    dir,
                    pg_name: Some(name),
                }
            }
        }
    }

    /// A new project directory inside the scratch dir, with `files`.
    pub fn project(&self, name: &str, files: &[(&str, &str)]) -> PathBuf {
        let root = self.dir.path().join(name);
        std::fs::create_dir_all(&root).unwrap();
        for (path, contents) in files {
            let p = root.join(path);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, contents).unwrap();
        }
        std::fs::canonicalize(root).unwrap()
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let Some(name) = self.pg_name.take() else {
            return;
        };
        let admin = postgres_admin_url();
        // Drop may run inside a runtime: do the async cleanup on a thread of its own.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            rt.block_on(async {
                let mut conn = PgConnection::connect(&admin).await.ok()?;
                conn.execute(format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)").as_str())
                    .await
                    .ok()
            })
        })
        .join();
    }
}

/// Generate one `#[tokio::test]` per backend for each named async test
/// function taking a [`Backend`].
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::Backend::Sqlite).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::Backend::Postgres).await
                }
            )*
        }
    };
}

/// Direct SQL access to a lockstep database, for checks and fixtures that
/// look at tables the library keeps to itself. Opens its own pool after
/// [`lockstep::db::Db::connect`] has created and migrated the database.
#[derive(Debug, Clone)]
pub struct RawDb {
    /// A pool of its own on the same database.
    pub pool: sqlx::AnyPool,
    /// The backend behind it.
    pub backend: lockstep::db::Backend,
}

impl RawDb {
    /// Connect (creating and migrating the database first).
    pub async fn connect(url: &str) -> anyhow::Result<RawDb> {
        let db = lockstep::db::Db::connect(url).await?;
        let backend = db.backend;
        db.close().await;
        // The database exists now: the URL opens it as it is (a query
        // string the caller gave is kept).
        let pool = sqlx::any::AnyPoolOptions::new()
            .max_connections(4)
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if backend == lockstep::db::Backend::Sqlite {
                        conn.execute(lockstep::db::sqlite_pragmas().as_str())
                            .await?;
                    }
                    Ok(())
                })
            })
            .connect(url)
            .await?;
        Ok(RawDb { pool, backend })
    }
}
