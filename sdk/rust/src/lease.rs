//! Leases on sub-resources of the plan's project, released when dropped.

use std::time::Duration;

use crate::lockstep::plugin::locks;
use crate::{LockError, PluginError};

/// A held lease on a sub-resource of the plan's project. Dropping it
/// releases it (so does the host when the call ends, whatever happens);
/// [`Lease::release`] releases it now and says whether it was still held.
#[derive(Debug)]
pub struct Lease {
    inner: locks::Lease,
    name: String,
}

/// Takes a lease on `name` (letters, digits and `-_.:/`) for `ttl`
/// (clamped by the host to between 5 s and 1 h). `acquire` never waits: if
/// another session holds the lease, the conflict is logged (who holds it,
/// doing what) and returned as `plugin-error::lock(conflict)`, which fails
/// the step and tells the user who holds it (exit code 3). Every other lock
/// error is returned the same way.
///
/// ```ignore
/// let lease = acquire("index", Duration::from_secs(30))?;
/// // … work under the lease …
/// lease.release()?; // or let it drop
/// ```
pub fn acquire(name: &str, ttl: Duration) -> Result<Lease, PluginError> {
    let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
    match locks::acquire(name, ttl_ms) {
        Ok(inner) => Ok(Lease {
            inner,
            name: name.to_string(),
        }),
        Err(e) => {
            crate::warn!("{}", describe(name, &e));
            Err(PluginError::Lock(e))
        }
    }
}

/// One line for the log about a failed lock operation on `name`.
pub(crate) fn describe(name: &str, e: &LockError) -> String {
    match e {
        LockError::Conflict(c) => format!(
            "lease {name} is held by {} ({}) on {}",
            c.owner, c.operation, c.holder
        ),
        LockError::Expired(x) => format!("lease {name} was lost (token {})", x.token),
        LockError::Invalid(m) => format!("lease {name}: invalid request: {m}"),
        LockError::Unavailable(m) => format!("lease {name}: lock service unavailable: {m}"),
    }
}

impl Lease {
    /// The full resource name the host locked (`project:<id>/res:<name>`).
    pub fn resource(&self) -> String {
        self.inner.name()
    }

    /// The fencing token: greater than any earlier holder's.
    pub fn token(&self) -> u64 {
        self.inner.token()
    }

    /// Extends the lease by `ttl` from now. A lost lease is
    /// `plugin-error::lock(expired)`: stop using what it protected.
    pub fn renew(&self, ttl: Duration) -> Result<(), PluginError> {
        let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
        self.inner.renew(ttl_ms).map_err(|e| self.lost(e))
    }

    /// Releases the lease now. An error means it was lost before (expired
    /// or force-released): what was computed under it must not be used, so
    /// return the error (`plugin-error::lock`).
    pub fn release(self) -> Result<(), PluginError> {
        self.inner.release().map_err(|e| self.lost(e))
    }

    fn lost(&self, e: LockError) -> PluginError {
        crate::error!("{}", describe(&self.name, &e));
        PluginError::Lock(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{LockConflict, LockExpired};

    #[test]
    fn lock_errors_read_as_one_line() {
        let c = LockError::Conflict(LockConflict {
            resource: "project:p/res:db".into(),
            owner: "s1".into(),
            operation: "migrate".into(),
            holder: "h:1".into(),
            acquired_at: 0,
            expires_at: 1,
        });
        assert_eq!(
            describe("db", &c),
            "lease db is held by s1 (migrate) on h:1"
        );
        let x = LockError::Expired(LockExpired {
            resource: "r".into(),
            token: 9,
        });
        assert_eq!(describe("db", &x), "lease db was lost (token 9)");
    }
}
