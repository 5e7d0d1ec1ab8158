//! Round trips and commits, counted when `lockstep` is built with the
//! `db-stats` cargo feature (benchmarks and the test crate turn it on;
//! default and release builds count nothing: [`snapshot`] is then `None`
//! and recording compiles to nothing).
//!
//! A round trip is one request sent to the database and waited for: a
//! statement or a batch of statements sent together, `BEGIN`, `COMMIT`, the
//! pool's liveness ping. A commit is a transaction that wrote: an explicit
//! `COMMIT`, or a writing statement or batch committed on its own.

/// Counts since the process started (or between two snapshots).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DbStats {
    /// Requests sent to the database and waited for.
    pub round_trips: u64,
    /// Transactions that wrote.
    pub commits: u64,
}

impl DbStats {
    /// What happened between `earlier` and `self`.
    pub fn since(self, earlier: DbStats) -> DbStats {
        DbStats {
            round_trips: self.round_trips - earlier.round_trips,
            commits: self.commits - earlier.commits,
        }
    }
}

#[cfg(feature = "db-stats")]
mod counters {
    use std::sync::atomic::AtomicU64;
    pub static ROUND_TRIPS: AtomicU64 = AtomicU64::new(0);
    pub static COMMITS: AtomicU64 = AtomicU64::new(0);
    /// Found in a binary exactly when the counters are compiled in
    /// (`scripts/check-no-fault-hooks.sh` looks for it).
    pub static MARKER: &str = "lockstep-db-stats-counters";
}

/// Count `round_trips` requests and `commits` commits.
#[inline(always)]
pub(crate) fn record(round_trips: u64, commits: u64) {
    #[cfg(feature = "db-stats")]
    {
        use std::sync::atomic::Ordering::Relaxed;
        std::hint::black_box(counters::MARKER);
        counters::ROUND_TRIPS.fetch_add(round_trips, Relaxed);
        counters::COMMITS.fetch_add(commits, Relaxed);
    }
    #[cfg(not(feature = "db-stats"))]
    let _ = (round_trips, commits);
}

/// The counts so far, or `None` in a build without the `db-stats` feature.
pub fn snapshot() -> Option<DbStats> {
    #[cfg(feature = "db-stats")]
    {
        use std::sync::atomic::Ordering::Relaxed;
        Some(DbStats {
            round_trips: counters::ROUND_TRIPS.load(Relaxed),
            commits: counters::COMMITS.load(Relaxed),
        })
    }
    #[cfg(not(feature = "db-stats"))]
    None
}
