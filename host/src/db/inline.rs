//! The SQLite write connection, run on the calling thread.
//!
//! sqlx drives a SQLite connection from a worker thread of its own: every
//! statement is a message to that thread, and every result and row a
//! message back, each waking the other side (on a 2-core VM a cross-core
//! wake-up costs more than the statement). The process's one write
//! connection ([`super::write`]) is instead a `rusqlite` connection
//! (the same SQLite library) that runs a request where it is awaited:
//! a write of a few rows in WAL mode with `synchronous = NORMAL` takes tens
//! of microseconds and no `fsync`.
//!
//! It never waits on the calling thread: the connection's busy timeout is
//! zero, and a request that finds another process holding SQLite's write
//! lock (`SQLITE_BUSY` before anything ran) runs again on the blocking
//! pool with [`SQLITE_BUSY_TIMEOUT`]. Results keep sqlx's shape (an `Any`
//! row per row, a query result per statement with `sqlite3_changes`), so
//! the statements and their callers are the same on both backends.

use std::borrow::Cow;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rusqlite::types::{Value, ValueRef};
use rusqlite::{Connection, OpenFlags};
use sqlx::Either;
use sqlx_core::any::{
    AnyColumn, AnyQueryResult, AnyRow, AnyTypeInfo, AnyTypeInfoKind, AnyValue, AnyValueKind,
};
use sqlx_core::error::{DatabaseError, ErrorKind};
use sqlx_core::ext::ustr::UStr;

use super::{sqlite_pragmas, SQLITE_BUSY_TIMEOUT};

/// One result of a request: a statement's outcome or a row.
pub(crate) type Item = Either<AnyQueryResult, AnyRow>;

/// Statements kept prepared (the process's own SQL: a few dozen texts).
const STATEMENT_CACHE: usize = 128;

/// The write connection.
pub(crate) struct Inline {
    conn: Connection,
    /// Each request's text split into its statements.
    split: HashMap<Box<str>, Arc<[Box<str>]>>,
}

impl std::fmt::Debug for Inline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inline").finish_non_exhaustive()
    }
}

/// How a request went.
enum Ran {
    /// The results, then the error that stopped it, if any.
    Done(Vec<Item>, Option<sqlx::Error>),
    /// Another process holds the write lock and nothing ran.
    Busy,
}

impl Inline {
    /// Open the database file at `path` (as the pool's connections do:
    /// created if `create`, the same pragmas, foreign keys on).
    pub(crate) fn open(path: &Path, create: bool) -> Result<Inline, sqlx::Error> {
        let mut flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        if create {
            flags |= OpenFlags::SQLITE_OPEN_CREATE;
        }
        let conn = Connection::open_with_flags(path, flags).map_err(error)?;
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        let mut inline = Inline {
            conn,
            split: HashMap::new(),
        };
        let pragmas = format!("{} PRAGMA foreign_keys = ON;", sqlite_pragmas());
        if let Ran::Done(_, Some(e)) = inline.run(&pragmas, &[]) {
            return Err(e);
        }
        inline.conn.busy_timeout(Duration::ZERO).map_err(error)?;
        Ok(inline)
    }

    /// Run `sql` with `params` here, or on the blocking pool if another
    /// process holds the write lock. `slot` is empty afterwards only if the
    /// future was dropped while the request waited there.
    pub(crate) async fn request(
        slot: &mut Option<Inline>,
        sql: &str,
        params: Vec<Value>,
    ) -> (Vec<Item>, Option<sqlx::Error>) {
        let Some(mut inline) = slot.take() else {
            return (Vec::new(), Some(lost()));
        };
        if let Ran::Done(items, e) = inline.run(sql, &params) {
            *slot = Some(inline);
            return (items, e);
        }
        let sql = sql.to_owned();
        let waited = tokio::task::spawn_blocking(move || {
            let ran = inline.run_waiting(&sql, &params);
            (inline, ran)
        })
        .await;
        match waited {
            Ok((inline, ran)) => {
                *slot = Some(inline);
                ran
            }
            Err(e) => match e.try_into_panic() {
                Ok(panic) => std::panic::resume_unwind(panic),
                // The runtime is shutting down.
                Err(_) => (Vec::new(), Some(lost())),
            },
        }
    }

    /// Run `sql`, waiting up to the busy timeout for the write lock.
    fn run_waiting(&mut self, sql: &str, params: &[Value]) -> (Vec<Item>, Option<sqlx::Error>) {
        let ran = match self.conn.busy_timeout(SQLITE_BUSY_TIMEOUT) {
            Ok(()) => self.run(sql, params),
            Err(e) => Ran::Done(Vec::new(), Some(error(e))),
        };
        let _ = self.conn.busy_timeout(Duration::ZERO);
        match ran {
            Ran::Done(items, e) => (items, e),
            Ran::Busy => (Vec::new(), Some(busy())),
        }
    }

    /// Run each statement of `sql` in turn, binding `params` as sqlx does
    /// (`$N` and `?N` by number, a bare `?` to the next one).
    fn run(&mut self, sql: &str, params: &[Value]) -> Ran {
        let statements = self.statements(sql);
        let mut items = Vec::new();
        let mut used = 0;
        for text in statements.iter() {
            match self.statement(text, params, &mut used, &mut items) {
                Ok(()) => {}
                Err(e) if items.is_empty() && is_busy(&e) && self.conn.is_autocommit() => {
                    return Ran::Busy;
                }
                Err(e) => return Ran::Done(items, Some(error(e))),
            }
        }
        Ran::Done(items, None)
    }

    /// Run one statement, pushing its rows and then its outcome.
    fn statement(
        &self,
        text: &str,
        params: &[Value],
        used: &mut usize,
        items: &mut Vec<Item>,
    ) -> rusqlite::Result<()> {
        let mut statement = self.conn.prepare_cached(text)?;
        for index in 1..=statement.parameter_count() {
            let number = match statement.parameter_name(index) {
                Some(name) => name[1..]
                    .parse::<usize>()
                    .map_err(|_| rusqlite::Error::InvalidParameterName(name.to_string()))?,
                None => {
                    *used += 1;
                    *used
                }
            };
            // SQLite reads an unbound parameter as NULL (as sqlx does).
            if let Some(value) = number.checked_sub(1).and_then(|n| params.get(n)) {
                statement.raw_bind_parameter(index, value)?;
            }
        }
        // Described once the first row comes (most writes return none).
        let mut columns = None;
        let mut rows = statement.raw_query();
        while let Some(row) = rows.next()? {
            let columns = columns
                .get_or_insert_with(|| describe(AsRef::<rusqlite::Statement<'_>>::as_ref(row)));
            let mut values = Vec::with_capacity(columns.1.len());
            for index in 0..columns.1.len() {
                values.push(AnyValue {
                    kind: kind(row.get_ref(index)?)?,
                });
            }
            items.push(Either::Right(AnyRow {
                column_names: columns.0.clone(),
                columns: columns.1.clone(),
                values,
            }));
        }
        drop(rows);
        items.push(Either::Left(AnyQueryResult {
            rows_affected: self.conn.changes(),
            last_insert_id: Some(self.conn.last_insert_rowid()),
        }));
        Ok(())
    }

    /// The statements of `sql`, split once per text.
    fn statements(&mut self, sql: &str) -> Arc<[Box<str>]> {
        if let Some(split) = self.split.get(sql) {
            return split.clone();
        }
        let split: Arc<[Box<str>]> = split(sql).into();
        self.split.insert(sql.into(), split.clone());
        split
    }
}

/// `sql` cut at each `;` outside a string, quoted identifier or comment;
/// empty pieces dropped. (The host's own SQL: no trigger bodies.)
fn split(sql: &str) -> Vec<Box<str>> {
    let bytes = sql.as_bytes();
    let mut statements = Vec::new();
    let (mut start, mut at) = (0, 0);
    while at < bytes.len() {
        at = match bytes[at] {
            quote @ (b'\'' | b'"' | b'`') => closing(bytes, at + 1, &[quote]),
            b'[' => closing(bytes, at + 1, b"]"),
            b'-' if bytes.get(at + 1) == Some(&b'-') => closing(bytes, at + 2, b"\n"),
            b'/' if bytes.get(at + 1) == Some(&b'*') => closing(bytes, at + 2, b"*/"),
            b';' => {
                push_statement(&mut statements, &sql[start..at]);
                start = at + 1;
                at + 1
            }
            _ => at + 1,
        };
    }
    push_statement(&mut statements, &sql[start.min(sql.len())..]);
    statements
}

/// The index after the first `end` at or after `from` (the end of the
/// text if there is none). A doubled quote inside a string closes and
/// reopens it, which comes to the same.
fn closing(bytes: &[u8], from: usize, end: &[u8]) -> usize {
    bytes[from.min(bytes.len())..]
        .windows(end.len())
        .position(|w| w == end)
        .map_or(bytes.len(), |i| from + i + end.len())
}

fn push_statement(statements: &mut Vec<Box<str>>, text: &str) {
    let text = text.trim();
    if !text.is_empty() {
        statements.push(text.into());
    }
}

/// The statement's column names and columns, as sqlx's `Any` rows carry
/// them.
fn describe(
    statement: &rusqlite::Statement<'_>,
) -> (Arc<sqlx_core::HashMap<UStr, usize>>, Vec<AnyColumn>) {
    let mut names = sqlx_core::HashMap::new();
    let mut columns = Vec::with_capacity(statement.column_count());
    for (ordinal, name) in statement.column_names().into_iter().enumerate() {
        let name = UStr::from(name.to_string());
        names.insert(name.clone(), ordinal);
        columns.push(AnyColumn {
            ordinal,
            name,
            type_info: AnyTypeInfo {
                kind: AnyTypeInfoKind::Null,
            },
        });
    }
    (Arc::new(names), columns)
}

/// A value as sqlx's SQLite driver hands it to `Any`: by its storage class.
fn kind(value: ValueRef<'_>) -> rusqlite::Result<AnyValueKind<'static>> {
    Ok(match value {
        ValueRef::Null => AnyValueKind::Null(AnyTypeInfoKind::Null),
        ValueRef::Integer(i) => AnyValueKind::BigInt(i),
        ValueRef::Real(f) => AnyValueKind::Double(f),
        ValueRef::Text(bytes) => AnyValueKind::Text(Cow::Owned(
            std::str::from_utf8(bytes)
                .map_err(rusqlite::Error::Utf8Error)?
                .to_owned(),
        )),
        ValueRef::Blob(bytes) => AnyValueKind::Blob(Cow::Owned(bytes.to_vec())),
    })
}

/// An `Any` argument as a SQLite value.
pub(crate) fn value(kind: AnyValueKind<'_>) -> Result<Value, sqlx::Error> {
    Ok(match kind {
        AnyValueKind::Null(_) => Value::Null,
        AnyValueKind::Bool(b) => Value::Integer(i64::from(b)),
        AnyValueKind::SmallInt(i) => Value::Integer(i64::from(i)),
        AnyValueKind::Integer(i) => Value::Integer(i64::from(i)),
        AnyValueKind::BigInt(i) => Value::Integer(i),
        AnyValueKind::Real(f) => Value::Real(f64::from(f)),
        AnyValueKind::Double(f) => Value::Real(f),
        AnyValueKind::Text(text) => Value::Text(text.into_owned()),
        AnyValueKind::Blob(bytes) => Value::Blob(bytes.into_owned()),
        other => {
            return Err(sqlx::Error::Encode(
                format!("no SQLite value for the argument {other:?}").into(),
            ))
        }
    })
}

/// The path and whether to create it, from a `sqlite://PATH?QUERY` URL as
/// [`super::Db::connect`] prepares it.
pub(crate) fn target(url: &str) -> (PathBuf, bool) {
    let rest = url
        .trim_start_matches("sqlite://")
        .trim_start_matches("sqlite:");
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    let create = !query
        .split('&')
        .any(|pair| pair == "mode=rw" || pair == "mode=ro");
    (PathBuf::from(path), create)
}

fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _) if f.code == rusqlite::ErrorCode::DatabaseBusy)
}

/// The write connection went with a request dropped while it waited for
/// the write lock; the next use opens it again.
fn lost() -> sqlx::Error {
    sqlx::Error::Protocol("the SQLite write connection was dropped mid-request".into())
}

fn busy() -> sqlx::Error {
    sqlx::Error::Database(Box::new(SqliteError {
        code: rusqlite::ffi::SQLITE_BUSY,
        message: "database is locked".into(),
    }))
}

/// A rusqlite error as sqlx reports SQLite's.
fn error(e: rusqlite::Error) -> sqlx::Error {
    match e {
        rusqlite::Error::SqliteFailure(failure, message) => {
            sqlx::Error::Database(Box::new(SqliteError {
                code: failure.extended_code,
                message: message.unwrap_or_else(|| failure.to_string()),
            }))
        }
        rusqlite::Error::Utf8Error(e) => sqlx::Error::Decode(Box::new(e)),
        other => sqlx::Error::Protocol(other.to_string()),
    }
}

/// An error SQLite returned: its extended result code and message.
#[derive(Debug)]
struct SqliteError {
    code: i32,
    message: String,
}

impl std::fmt::Display for SqliteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The code disambiguates messages such as "database is locked".
        write!(f, "(code: {}) {}", self.code, self.message)
    }
}

impl std::error::Error for SqliteError {}

impl DatabaseError for SqliteError {
    fn message(&self) -> &str {
        &self.message
    }

    fn code(&self) -> Option<Cow<'_, str>> {
        Some(self.code.to_string().into())
    }

    fn as_error(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        self
    }

    fn as_error_mut(&mut self) -> &mut (dyn std::error::Error + Send + Sync + 'static) {
        self
    }

    fn into_error(self: Box<Self>) -> Box<dyn std::error::Error + Send + Sync + 'static> {
        self
    }

    fn kind(&self) -> ErrorKind {
        use rusqlite::ffi;
        match self.code {
            ffi::SQLITE_CONSTRAINT_UNIQUE | ffi::SQLITE_CONSTRAINT_PRIMARYKEY => {
                ErrorKind::UniqueViolation
            }
            ffi::SQLITE_CONSTRAINT_FOREIGNKEY => ErrorKind::ForeignKeyViolation,
            ffi::SQLITE_CONSTRAINT_NOTNULL => ErrorKind::NotNullViolation,
            ffi::SQLITE_CONSTRAINT_CHECK => ErrorKind::CheckViolation,
            _ => ErrorKind::Other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_at_complete_statements_only() {
        let split =
            split("BEGIN IMMEDIATE;\n INSERT INTO t VALUES ('a;b'); -- c;\nSELECT 1;\nCOMMIT");
        let split: Vec<&str> = split.iter().map(|s| &**s).collect();
        assert_eq!(
            split,
            [
                "BEGIN IMMEDIATE",
                "INSERT INTO t VALUES ('a;b')",
                "-- c;\nSELECT 1",
                "COMMIT"
            ]
        );
    }

    #[test]
    fn binds_numbered_parameters_and_reports_each_statement() {
        let dir = tempfile::tempdir().unwrap();
        let mut db = Inline::open(&dir.path().join("t.db"), true).unwrap();
        let sql = "CREATE TABLE t (a INTEGER, b TEXT, c REAL, d BLOB);
                   INSERT INTO t VALUES ($2, $1, $3, $4), ($2, NULL, 0.5, x'00');
                   SELECT a, b, c, d FROM t ORDER BY c DESC";
        let params = vec![
            Value::Text("x".into()),
            Value::Integer(7),
            Value::Real(1.5),
            Value::Blob(vec![1, 2]),
        ];
        let Ran::Done(items, None) = db.run(sql, &params) else {
            panic!("the request failed");
        };
        let results: Vec<u64> = items
            .iter()
            .filter_map(|item| item.as_ref().left().map(|r| r.rows_affected))
            .collect();
        assert_eq!(results.len(), 3);
        assert_eq!(results[1], 2);
        let rows: Vec<&AnyRow> = items.iter().filter_map(|i| i.as_ref().right()).collect();
        use sqlx::Row;
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].get::<i64, _>("a"), 7);
        assert_eq!(rows[0].get::<String, _>("b"), "x");
        assert_eq!(rows[0].get::<f64, _>("c"), 1.5);
        assert_eq!(rows[0].get::<Vec<u8>, _>("d"), vec![1, 2]);
        assert_eq!(rows[1].get::<Option<String>, _>("b"), None);
    }

    #[test]
    fn a_constraint_error_keeps_its_code_and_kind() {
        let dir = tempfile::tempdir().unwrap();
        let mut db = Inline::open(&dir.path().join("t.db"), true).unwrap();
        let sql = "CREATE TABLE u (k TEXT PRIMARY KEY); INSERT INTO u VALUES ('a'); INSERT INTO u VALUES ('a')";
        let Ran::Done(items, Some(sqlx::Error::Database(e))) = db.run(sql, &[]) else {
            panic!("the second insert must fail");
        };
        assert_eq!(items.len(), 2);
        assert_eq!(e.kind(), ErrorKind::UniqueViolation);
        assert_eq!(e.code().as_deref(), Some("1555"));
    }

    #[tokio::test]
    async fn a_request_that_finds_the_write_lock_taken_waits_off_thread() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let mut holder = Inline::open(&path, true).unwrap();
        let begun = holder.run(
            "CREATE TABLE t (a INTEGER); BEGIN IMMEDIATE; INSERT INTO t VALUES (1)",
            &[],
        );
        assert!(matches!(begun, Ran::Done(_, None)));
        let mut slot = Some(Inline::open(&path, true).unwrap());
        // On the calling thread it gives up at once, having run nothing.
        let inline = slot.as_mut().unwrap().run("INSERT INTO t VALUES (2)", &[]);
        assert!(matches!(inline, Ran::Busy));
        let release = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(200));
            assert!(matches!(holder.run("COMMIT", &[]), Ran::Done(_, None)));
        });
        let (items, error) = Inline::request(
            &mut slot,
            "INSERT INTO t VALUES (2); SELECT count(*) AS n FROM t",
            Vec::new(),
        )
        .await;
        release.join().unwrap();
        assert!(error.is_none(), "{error:?}");
        let rows: Vec<&AnyRow> = items.iter().filter_map(|i| i.as_ref().right()).collect();
        use sqlx::Row;
        assert_eq!(rows[0].get::<i64, _>("n"), 2);
        // The connection came back from the blocking pool, inline again.
        assert!(matches!(
            slot.as_mut().unwrap().run("SELECT 1", &[]),
            Ran::Done(_, None)
        ));
    }

    #[test]
    fn urls_name_the_file_and_the_mode() {
        assert_eq!(
            target("sqlite:///a/b.db?mode=rwc"),
            (PathBuf::from("/a/b.db"), true)
        );
        assert_eq!(
            target("sqlite:///a/b.db?mode=rw"),
            (PathBuf::from("/a/b.db"), false)
        );
    }
}
