//! Fault injection for the crash and failure tests of apply.
//!
//! The hooks exist only in builds with the `fault-injection` cargo feature
//! (off by default), which the test crate turns on for its own builds:
//! there they are read from the `LOCKSTEP_FAULT_APPLY_*` environment
//! variables on every apply. Without the feature [`Faults`] is an empty
//! type whose hooks do nothing, so a release build reads no such variable,
//! never sleeps and never aborts on a test's behalf. The host's own unit
//! tests construct [`Faults`] directly instead.

#[cfg(any(test, feature = "fault-injection"))]
use super::ApplyError;

/// Environment variable for fault-injection tests: abort the process after
/// this many files of an apply were renamed or deleted (simulates a crash).
#[cfg(feature = "fault-injection")]
pub const FAULT_STOP_AFTER_ENV: &str = "LOCKSTEP_FAULT_APPLY_STOP_AFTER";
/// Environment variable for fault-injection tests: sleep this many
/// milliseconds before each file of an apply is renamed or deleted (widens
/// the crash window).
#[cfg(feature = "fault-injection")]
pub const FAULT_DELAY_ENV: &str = "LOCKSTEP_FAULT_APPLY_DELAY_MS";
/// Environment variable for fault-injection tests: staging the k-th file
/// (1-based) of an apply fails with an I/O error.
#[cfg(feature = "fault-injection")]
pub const FAULT_FAIL_STAGE_ENV: &str = "LOCKSTEP_FAULT_APPLY_FAIL_STAGE";
/// Environment variable for fault-injection tests: renaming the k-th file
/// (1-based) of an apply fails once with an I/O error.
#[cfg(feature = "fault-injection")]
pub const FAULT_FAIL_COMMIT_ENV: &str = "LOCKSTEP_FAULT_APPLY_FAIL_COMMIT";

/// The faults to inject into one apply.
#[cfg(any(test, feature = "fault-injection"))]
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Faults {
    /// Abort after this many files were renamed or deleted.
    pub(crate) stop_after: Option<usize>,
    /// Sleep this long before each rename or delete (milliseconds).
    pub(crate) delay_ms: Option<u64>,
    /// Fail staging the k-th file (1-based).
    pub(crate) fail_stage: Option<usize>,
    /// Fail renaming the k-th file (1-based).
    pub(crate) fail_commit: Option<usize>,
}

/// No faults: builds without the `fault-injection` feature have no hooks.
#[cfg(not(any(test, feature = "fault-injection")))]
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Faults;

#[cfg(any(test, feature = "fault-injection"))]
impl Faults {
    /// The faults the environment asks for (none without the feature).
    pub(crate) fn from_env() -> Self {
        #[cfg(feature = "fault-injection")]
        {
            fn var<T: std::str::FromStr>(name: &str) -> Option<T> {
                std::env::var(name).ok().and_then(|v| v.parse().ok())
            }
            Faults {
                stop_after: var(FAULT_STOP_AFTER_ENV),
                delay_ms: var(FAULT_DELAY_ENV),
                fail_stage: var(FAULT_FAIL_STAGE_ENV),
                fail_commit: var(FAULT_FAIL_COMMIT_ENV),
            }
        }
        #[cfg(not(feature = "fault-injection"))]
        Faults::default()
    }

    /// Before staging the `k`-th file (1-based), `path`.
    pub(crate) fn stage(&self, path: &str, k: usize) -> Result<(), ApplyError> {
        injected(self.fail_stage, "staging", path, k)
    }

    /// Before renaming the `k`-th file (1-based), `path`, over its target.
    pub(crate) fn rename(&self, path: &str, k: usize) -> Result<(), ApplyError> {
        injected(self.fail_commit, "renaming", path, k)
    }

    /// Before a file is renamed or deleted.
    pub(crate) fn before_change(&self) {
        if let Some(ms) = self.delay_ms {
            std::thread::sleep(std::time::Duration::from_millis(ms));
        }
    }

    /// After `changed` files were renamed or deleted.
    pub(crate) fn after_change(&self, changed: usize) {
        if self.stop_after == Some(changed) {
            eprintln!("fault injection: stopping after {changed} file(s)");
            std::process::abort();
        }
    }
}

#[cfg(any(test, feature = "fault-injection"))]
fn injected(at: Option<usize>, what: &str, path: &str, k: usize) -> Result<(), ApplyError> {
    if at == Some(k) {
        let error = std::io::Error::other(format!("injected fault: {what} of file {k} failed"));
        return Err(ApplyError::io(path, error));
    }
    Ok(())
}

#[cfg(not(any(test, feature = "fault-injection")))]
impl Faults {
    /// No faults.
    #[inline(always)]
    pub(crate) fn from_env() -> Self {
        Faults
    }

    /// Never fails.
    #[inline(always)]
    pub(crate) fn stage(&self, _: &str, _: usize) -> Result<(), super::ApplyError> {
        Ok(())
    }

    /// Never fails.
    #[inline(always)]
    pub(crate) fn rename(&self, _: &str, _: usize) -> Result<(), super::ApplyError> {
        Ok(())
    }

    /// Does nothing.
    #[inline(always)]
    pub(crate) fn before_change(&self) {}

    /// Does nothing.
    #[inline(always)]
    pub(crate) fn after_change(&self, _: usize) {}
}
