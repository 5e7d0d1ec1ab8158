//! Writes. On SQLite every write goes through **one connection** held by
//! the process (writers queue for it here instead of contending for
//! SQLite's write lock and sleeping through `SQLITE_BUSY`), and no pool
//! checks it out or pings it on return; on PostgreSQL writes use the
//! connections of [`super::kept`], not pinged on return either.
//!
//! [`WriteTx`] is a transaction on that connection, [`Db::batch`] sends
//! several statements as one request and one transaction: on SQLite the
//! statements are wrapped in `BEGIN IMMEDIATE; …; COMMIT` and run as one
//! unit by the connection, on PostgreSQL the batch must be one statement
//! (data-modifying `WITH` clauses), which the server runs atomically.
//!
//! A transaction or batch abandoned half-way (an error, a dropped future)
//! is rolled back before the connection serves anyone else.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use futures::future::BoxFuture;
use futures::stream::BoxStream;
use futures::{StreamExt, TryFutureExt, TryStreamExt};
use sqlx::any::{AnyArguments, AnyQueryResult, AnyRow, AnyStatement, AnyTypeInfo};
use sqlx::query::Query;
use sqlx::{Any, AnyConnection, AnyPool, Describe, Either, Execute, Executor};
use tokio::sync::{Mutex, OwnedMutexGuard};

use super::inline::{self, Inline};
use super::kept::{breaks_connection, KeptConn};
use super::stats::record;
use super::{Backend, Db, Writes};

/// The one SQLite write connection ([`Inline`]: run on the calling
/// thread), opened on first use and again after it was dropped.
#[derive(Debug)]
pub(crate) struct Writer {
    conn: Arc<Mutex<Option<Inline>>>,
    path: PathBuf,
    create: bool,
}

impl Writer {
    /// The writer of the database at `url` (`sqlite://PATH?QUERY`).
    pub(crate) fn new(url: &str) -> Self {
        let (path, create) = inline::target(url);
        Writer {
            conn: Arc::new(Mutex::new(None)),
            path,
            create,
        }
    }

    async fn lock(&self) -> Result<OwnedMutexGuard<Option<Inline>>, sqlx::Error> {
        let mut guard = self.conn.clone().lock_owned().await;
        if guard.is_none() {
            let (path, create) = (self.path.clone(), self.create);
            let opened = tokio::task::spawn_blocking(move || Inline::open(&path, create))
                .await
                .map_err(|e| sqlx::Error::Protocol(format!("opening the SQLite writer: {e}")))??;
            *guard = Some(opened);
        }
        Ok(guard)
    }

    /// Close the connection (the pool's `close`).
    pub(crate) async fn close(&self) {
        if let Some(conn) = self.conn.lock().await.take() {
            let _ = tokio::task::spawn_blocking(move || drop(conn)).await;
        }
    }
}

/// A write connection: the SQLite writer, or one of the PostgreSQL
/// connections kept for writes ([`super::kept`]). Statements run on it
/// through its [`Executor`] implementation, which notes an error that may
/// have broken a kept connection so that it is closed instead of reused.
#[derive(Debug)]
pub(crate) enum WriteConn {
    /// SQLite: the process's one write connection.
    Single(OwnedMutexGuard<Option<Inline>>),
    /// PostgreSQL: a kept connection.
    Kept(KeptConn),
}

impl WriteConn {
    /// The kept PostgreSQL connection and its broken flag (`None`: SQLite).
    fn kept(&mut self) -> Option<(&mut AnyConnection, &AtomicBool)> {
        match self {
            WriteConn::Single(_) => None,
            WriteConn::Kept(kept) => Some(kept.parts()),
        }
    }

    /// Never hand this kept PostgreSQL connection to anyone else (SQLite's
    /// one writer stays).
    fn discard(&mut self) {
        if let WriteConn::Kept(kept) = self {
            kept.discard();
        }
    }
}

/// Mark a kept connection broken when `e` may have broken it.
fn note(broken: &AtomicBool, e: &sqlx::Error) {
    if breaks_connection(e) {
        broken.store(true, Ordering::Relaxed);
    }
}

impl<'c> Executor<'c> for &'c mut WriteConn {
    type Database = Any;

    fn fetch_many<'e, 'q: 'e, E>(
        self,
        mut query: E,
    ) -> BoxStream<'e, Result<Either<AnyQueryResult, AnyRow>, sqlx::Error>>
    where
        'c: 'e,
        E: 'q + Execute<'q, Any>,
    {
        match self {
            WriteConn::Single(slot) => {
                let sql = query.sql();
                let params = query
                    .take_arguments()
                    .map_err(sqlx::Error::Encode)
                    .and_then(|args| {
                        args.map_or_else(
                            || Ok(Vec::new()),
                            |args| args.values.0.into_iter().map(inline::value).collect(),
                        )
                    });
                let ran = async move {
                    let (items, error) = match params {
                        Ok(params) => Inline::request(slot, sql, params).await,
                        Err(e) => (Vec::new(), Some(e)),
                    };
                    let items: Vec<Result<Either<AnyQueryResult, AnyRow>, sqlx::Error>> =
                        items.into_iter().map(Ok).chain(error.map(Err)).collect();
                    items
                };
                Box::pin(futures::stream::once(ran).flat_map(futures::stream::iter))
            }
            WriteConn::Kept(kept) => {
                let (conn, broken) = kept.parts();
                Box::pin(conn.fetch_many(query).inspect_err(move |e| note(broken, e)))
            }
        }
    }

    fn fetch_optional<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> BoxFuture<'e, Result<Option<AnyRow>, sqlx::Error>>
    where
        'c: 'e,
        E: 'q + Execute<'q, Any>,
    {
        if let WriteConn::Kept(kept) = self {
            let (conn, broken) = kept.parts();
            return Box::pin(
                conn.fetch_optional(query)
                    .inspect_err(move |e| note(broken, e)),
            );
        }
        // SQLite: every statement runs; the first row is the answer.
        Box::pin(async move {
            let mut first = None;
            let mut results = self.fetch_many(query);
            while let Some(item) = results.try_next().await? {
                if let (None, Either::Right(row)) = (&first, item) {
                    first = Some(row);
                }
            }
            Ok(first)
        })
    }

    fn prepare_with<'e, 'q: 'e>(
        self,
        sql: &'q str,
        parameters: &'e [AnyTypeInfo],
    ) -> BoxFuture<'e, Result<AnyStatement<'q>, sqlx::Error>>
    where
        'c: 'e,
    {
        match self.kept() {
            Some((conn, broken)) => Box::pin(
                conn.prepare_with(sql, parameters)
                    .inspect_err(move |e| note(broken, e)),
            ),
            None => Box::pin(async { Err(unsupported("prepare")) }),
        }
    }

    fn describe<'e, 'q: 'e>(self, sql: &'q str) -> BoxFuture<'e, Result<Describe<Any>, sqlx::Error>>
    where
        'c: 'e,
    {
        match self.kept() {
            Some((conn, broken)) => {
                Box::pin(conn.describe(sql).inspect_err(move |e| note(broken, e)))
            }
            None => Box::pin(async { Err(unsupported("describe")) }),
        }
    }
}

/// What the SQLite write connection does not do (statements are prepared
/// and cached as they run).
fn unsupported(what: &str) -> sqlx::Error {
    sqlx::Error::Protocol(format!(
        "`{what}` is not available on the SQLite write connection"
    ))
}

/// Roll back whatever `conn` may have left open, then let it serve
/// others (on a runtime; without one, see [`drop_conn`]).
fn abandon(mut conn: WriteConn) {
    let Ok(handle) = tokio::runtime::Handle::try_current() else {
        return drop_conn(conn);
    };
    let rollback = async move {
        if (&mut conn).execute("ROLLBACK").await.is_err() {
            // Nothing was open (the usual case after a failed statement
            // that SQLite already rolled back), or the connection broke:
            // a kept PostgreSQL connection is not reused either way.
            tracing::trace!("rollback of an abandoned write found nothing open");
            conn.discard();
        }
        record(1, 0);
    };
    handle.spawn(rollback);
}

fn drop_conn(conn: WriteConn) {
    // Closed rather than left with a transaction open: the SQLite writer
    // reconnects on its next use; a kept PostgreSQL connection is not given
    // back.
    match conn {
        WriteConn::Single(mut guard) => drop(guard.take()),
        WriteConn::Kept(mut kept) => kept.discard(),
    }
}

/// A write transaction (`BEGIN IMMEDIATE` on SQLite, `BEGIN` on
/// PostgreSQL). Dropped without [`WriteTx::commit`], it rolls back.
#[derive(Debug)]
pub(crate) struct WriteTx {
    conn: Option<WriteConn>,
}

impl WriteTx {
    /// The connection, for one statement in the transaction (counted as
    /// one round trip).
    pub(crate) fn conn(&mut self) -> &mut WriteConn {
        record(1, 0);
        self.conn.as_mut().expect("transaction open")
    }

    /// Send `query` — statements ending with the transaction's own
    /// `COMMIT` when `commits` (see [`Db::batch_sql`]) — as one request;
    /// returns the rows of each statement. On PostgreSQL (a batch is one
    /// statement there) the commit is a request of its own after it.
    pub(crate) async fn batch<'q>(
        &mut self,
        query: Query<'q, Any, AnyArguments<'q>>,
        commits: bool,
    ) -> Result<Vec<Vec<AnyRow>>, sqlx::Error> {
        let conn = self.conn.as_mut().expect("transaction open");
        let separate = matches!(conn, WriteConn::Kept(_));
        record(1, u64::from(commits && !separate));
        let mut groups = grouped(conn, query).await?;
        if commits && separate {
            self.commit().await?;
        } else if commits {
            // Committed by the batch: nothing left to roll back.
            self.conn.take();
            groups.pop(); // COMMIT
        }
        Ok(groups)
    }

    /// Whether the transaction is still open (not committed by a batch).
    pub(crate) fn is_open(&self) -> bool {
        self.conn.is_some()
    }

    /// Commit (the transaction is then closed: dropping it does nothing).
    pub(crate) async fn commit(&mut self) -> Result<(), sqlx::Error> {
        record(1, 1);
        let mut conn = self.conn.take().expect("transaction open");
        match (&mut conn).execute("COMMIT").await {
            Ok(_) => Ok(()),
            Err(e) => {
                abandon(conn);
                Err(e)
            }
        }
    }
}

impl Drop for WriteTx {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            abandon(conn);
        }
    }
}

/// Run `query` and split its rows by statement (a statement's end is
/// reported after its rows).
async fn grouped<'q>(
    conn: &mut WriteConn,
    query: impl Execute<'q, Any> + 'q,
) -> Result<Vec<Vec<AnyRow>>, sqlx::Error> {
    let mut groups = Vec::new();
    let mut current = Vec::new();
    let mut stream = conn.fetch_many(query);
    while let Some(item) = stream.try_next().await? {
        match item {
            Either::Left(_) => groups.push(std::mem::take(&mut current)),
            Either::Right(row) => current.push(row),
        }
    }
    if !current.is_empty() {
        groups.push(current);
    }
    Ok(groups)
}

impl Db {
    /// A connection for one writing statement committed on its own
    /// (counted as one round trip and one commit).
    pub(crate) async fn writer(&self) -> Result<WriteConn, sqlx::Error> {
        record(1, 1);
        self.write_conn().await
    }

    async fn write_conn(&self) -> Result<WriteConn, sqlx::Error> {
        match &self.writes {
            Writes::Single(writer) => Ok(WriteConn::Single(writer.lock().await?)),
            Writes::Kept(kept) => Ok(WriteConn::Kept(kept.acquire().await?)),
        }
    }

    /// Begin a write transaction: `BEGIN IMMEDIATE` on SQLite (takes the
    /// write lock up front, so read-then-write cannot fail to upgrade), a
    /// plain `BEGIN` on PostgreSQL.
    pub(crate) async fn begin_write(&self) -> Result<WriteTx, sqlx::Error> {
        record(1, 0);
        let mut conn = self.write_conn().await?;
        let begin = match self.backend {
            Backend::Sqlite => "BEGIN IMMEDIATE",
            Backend::Postgres => "BEGIN",
        };
        (&mut conn).execute(begin).await?;
        Ok(WriteTx { conn: Some(conn) })
    }

    /// PostgreSQL: begin a write transaction with `then` — statements
    /// without parameters (see [`Db::simple_transaction`]) — in the same
    /// request; returns the transaction, left open, and the rows of each
    /// of those statements.
    pub(crate) async fn begin_simple(
        &self,
        then: &str,
    ) -> Result<(WriteTx, Vec<Vec<AnyRow>>), sqlx::Error> {
        record(1, 0);
        let conn = self.write_conn().await?;
        let mut tx = WriteTx { conn: Some(conn) };
        let conn = tx.conn.as_mut().expect("transaction open");
        let mut groups = grouped(conn, format!("BEGIN;\n{then}").as_str()).await?;
        if !groups.is_empty() {
            groups.remove(0); // BEGIN
        }
        Ok((tx, groups))
    }

    /// Begin a write transaction on SQLite with the statements of `query`
    /// (made by [`Db::batch_sql`] with `Open::Begin`) in the same request;
    /// returns the transaction and the rows of each statement.
    pub(crate) async fn begin_batch<'q>(
        &self,
        query: Query<'q, Any, AnyArguments<'q>>,
    ) -> Result<(WriteTx, Vec<Vec<AnyRow>>), sqlx::Error> {
        record(1, 0);
        let conn = self.write_conn().await?;
        let mut tx = WriteTx { conn: Some(conn) };
        let conn = tx.conn.as_mut().expect("transaction open");
        let mut groups = grouped(conn, query).await?;
        if !groups.is_empty() {
            groups.remove(0); // BEGIN
        }
        Ok((tx, groups))
    }

    /// The text of a batch of `statements`: on SQLite wrapped in
    /// `BEGIN IMMEDIATE` and `COMMIT` as `open` says; on PostgreSQL the
    /// batch must be a single statement, sent as it is.
    pub(crate) fn batch_sql(&self, statements: &[&str], open: Open) -> String {
        match self.backend {
            Backend::Sqlite => {
                let mut sql = String::new();
                if matches!(open, Open::Both | Open::Begin) {
                    sql.push_str("BEGIN IMMEDIATE;\n");
                }
                sql.push_str(&statements.join(";\n"));
                if matches!(open, Open::Both | Open::Commit) {
                    sql.push_str(";\nCOMMIT");
                }
                sql
            }
            Backend::Postgres => {
                debug_assert_eq!(statements.len(), 1, "one statement per batch on PostgreSQL");
                statements.join(";\n")
            }
        }
    }

    /// Send a batch made by [`Db::batch_sql`] (`Open::Both`) as one request
    /// and one transaction; returns the rows of each of its statements.
    pub(crate) async fn batch<'q>(
        &self,
        query: Query<'q, Any, AnyArguments<'q>>,
    ) -> Result<Vec<Vec<AnyRow>>, sqlx::Error> {
        record(1, 1);
        let conn = self.write_conn().await?;
        // Until the batch has run, its transaction may be open: roll back
        // if it fails or is dropped half-way.
        let mut tx = WriteTx { conn: Some(conn) };
        let conn = tx.conn.as_mut().expect("transaction open");
        let mut groups = grouped(conn, query).await?;
        tx.conn.take();
        if self.backend == Backend::Sqlite && groups.len() >= 2 {
            groups.remove(0); // BEGIN
            groups.pop(); // COMMIT
        }
        Ok(groups)
    }

    /// Send `statements` — without parameters (values written in) — as one
    /// simple query between `BEGIN` and `COMMIT`: one request and one
    /// commit. Returns the rows of each of the statements.
    pub(crate) async fn simple_transaction(
        &self,
        statements: &str,
    ) -> Result<Vec<Vec<AnyRow>>, sqlx::Error> {
        record(1, 1);
        let conn = self.write_conn().await?;
        let mut tx = WriteTx { conn: Some(conn) };
        let conn = tx.conn.as_mut().expect("transaction open");
        let text = format!("BEGIN;\n{statements};\nCOMMIT");
        let mut groups = grouped(conn, text.as_str()).await?;
        tx.conn.take();
        if groups.len() >= 2 {
            groups.remove(0); // BEGIN
            groups.pop(); // COMMIT
        }
        Ok(groups)
    }

    /// The pool, for one reading statement (counted as one round trip, and
    /// one more for the pool's check of the connection on its return).
    pub(crate) fn reader(&self) -> &AnyPool {
        record(2, 0);
        &self.pool
    }
}

/// Which ends of a transaction a SQLite batch carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Open {
    /// `BEGIN IMMEDIATE; …; COMMIT`: a whole transaction.
    Both,
    /// `BEGIN IMMEDIATE; …`: the transaction stays open.
    Begin,
    /// `…; COMMIT`: ends a transaction begun earlier.
    Commit,
    /// `…`: statements inside a transaction begun earlier, which stays open.
    Inside,
}
