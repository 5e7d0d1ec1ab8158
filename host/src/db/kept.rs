//! PostgreSQL: the connections this process writes through, kept by us
//! rather than by the sqlx pool. The pool sends every connection it takes
//! back a round trip (a ping) before anyone may use it again; measured
//! beside the same statements on one connection, that costs a lock
//! acquire + release about half as much again as the statements
//! themselves (docs/perf/README.md). Here a connection given back is ready
//! at once, unless it is suspect:
//!
//! - a connection whose statement failed in a way that may have broken it
//!   (an I/O, TLS or protocol error, or the server ending the session: SQL
//!   states `08…` and `57P…`) is closed instead of kept, and so is one given
//!   back in the middle of a transaction the caller did not finish;
//! - one idle for [`PG_PING_IDLE`](super::PG_PING_IDLE) or longer is
//!   pinged before it is used, so that a connection the server dropped
//!   meanwhile (a restart, `pg_terminate_backend`, an idle timeout) is
//!   replaced instead of failing the next statement;
//! - one idle for [`IDLE_TIMEOUT`] is closed.
//!
//! A statement abandoned half-way (its future dropped) leaves the
//! connection usable: the driver reads what the server still had to say
//! before it sends the next statement.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sqlx::any::AnyConnectOptions;
use sqlx::{AnyConnection, ConnectOptions, Connection};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::stats::record;
use super::PG_PING_IDLE;

/// An idle connection kept this long is closed.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// How long a writer waits for a connection before failing.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

/// The set of write connections (at most `max` open at once).
#[derive(Debug)]
pub(crate) struct Kept {
    idle: Mutex<Vec<(AnyConnection, Instant)>>,
    slots: Arc<Semaphore>,
    options: AnyConnectOptions,
}

impl Kept {
    pub(crate) fn new(options: AnyConnectOptions, max: usize) -> Arc<Kept> {
        Arc::new(Kept {
            idle: Mutex::new(Vec::new()),
            slots: Arc::new(Semaphore::new(max)),
            options,
        })
    }

    /// A connection: the most recently used idle one (pinged first when
    /// it sat idle long enough for the server to have dropped it), or a
    /// new one.
    pub(crate) async fn acquire(self: &Arc<Self>) -> Result<KeptConn, sqlx::Error> {
        let permit = tokio::time::timeout(ACQUIRE_TIMEOUT, self.slots.clone().acquire_owned())
            .await
            .map_err(|_| sqlx::Error::PoolTimedOut)?
            .map_err(|_| sqlx::Error::PoolClosed)?;
        loop {
            let Some((mut conn, since)) = self.take_idle() else {
                break;
            };
            if since.elapsed() < PG_PING_IDLE {
                return Ok(self.guard(conn, permit));
            }
            record(1, 0);
            if conn.ping().await.is_ok() {
                return Ok(self.guard(conn, permit));
            }
            tracing::debug!("a kept PostgreSQL connection did not answer its ping; replacing it");
        }
        let conn = self.options.connect().await?;
        Ok(self.guard(conn, permit))
    }

    /// The most recently returned idle connection; those idle past
    /// [`IDLE_TIMEOUT`] are dropped on the way (the oldest are at the
    /// bottom).
    fn take_idle(&self) -> Option<(AnyConnection, Instant)> {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        let expired = idle
            .iter()
            .take_while(|(_, since)| since.elapsed() >= IDLE_TIMEOUT)
            .count();
        drop(idle.drain(..expired));
        idle.pop()
    }

    fn guard(self: &Arc<Self>, conn: AnyConnection, permit: OwnedSemaphorePermit) -> KeptConn {
        KeptConn {
            conn: Some(conn),
            broken: AtomicBool::new(false),
            home: self.clone(),
            _permit: permit,
        }
    }

    fn give_back(&self, conn: AnyConnection) {
        self.idle
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((conn, Instant::now()));
    }

    /// Close every idle connection and refuse new acquisitions; those in
    /// use are closed when given back.
    pub(crate) async fn close(&self) {
        self.slots.close();
        let idle: Vec<_> =
            std::mem::take(&mut *self.idle.lock().unwrap_or_else(|e| e.into_inner()));
        for (conn, _) in idle {
            let _ = conn.close().await;
        }
    }
}

/// A kept connection in use; given back (or closed, when suspect) on drop.
#[derive(Debug)]
pub(crate) struct KeptConn {
    conn: Option<AnyConnection>,
    broken: AtomicBool,
    home: Arc<Kept>,
    _permit: OwnedSemaphorePermit,
}

impl KeptConn {
    /// The connection and the flag its statements set when it may be
    /// broken.
    pub(crate) fn parts(&mut self) -> (&mut AnyConnection, &AtomicBool) {
        (
            self.conn.as_mut().expect("held until dropped"),
            &self.broken,
        )
    }

    /// Do not give this connection back (it was left in a state nobody
    /// should inherit).
    pub(crate) fn discard(&mut self) {
        self.broken.store(true, Ordering::Relaxed);
    }
}

impl Drop for KeptConn {
    fn drop(&mut self) {
        let Some(conn) = self.conn.take() else {
            return;
        };
        if self.broken.load(Ordering::Relaxed) || self.home.slots.is_closed() {
            // Dropping closes the socket; nothing to say to a server that
            // may be gone.
            drop(conn);
        } else {
            self.home.give_back(conn);
        }
    }
}

/// Whether `e` may have left the connection unusable.
pub(crate) fn breaks_connection(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::WorkerCrashed => true,
        // Connection exceptions and operator intervention (the server
        // shutting down or terminating the session).
        sqlx::Error::Database(db) => db
            .code()
            .is_some_and(|c| c.starts_with("08") || c.starts_with("57P")),
        _ => false,
    }
}
