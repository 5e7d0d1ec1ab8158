//! Fencing: a lease's token as a condition that a write adds to its own
//! statement, so that a holder who lost the lease can no longer write.

use sqlx::any::AnyArguments;
use sqlx::query::Query;
use sqlx::Any;

use crate::db::Backend;

/// The lease a write is made under: `(resource, owner, token)`. A write
/// fenced by it succeeds only while that lease is current (same owner, same
/// token, not expired on the database clock).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fence {
    resource: String,
    owner: String,
    token: i64,
}

impl Fence {
    /// The fence of the lease `token` on `resource` held by `owner`.
    pub fn new(resource: impl Into<String>, owner: impl Into<String>, token: i64) -> Self {
        Fence {
            resource: resource.into(),
            owner: owner.into(),
            token,
        }
    }

    /// The leased resource.
    pub fn resource(&self) -> &str {
        &self.resource
    }

    /// The lease's owner id.
    pub fn owner(&self) -> &str {
        &self.owner
    }

    /// The fencing token.
    pub fn token(&self) -> i64 {
        self.token
    }

    /// A condition for a `WHERE` that holds only while the lease is
    /// current. It takes the three placeholders `$first`, `$first + 1` and
    /// `$first + 2`, which [`Fence::bind`] fills: call it right after
    /// binding `$first - 1`.
    pub fn condition(&self, backend: Backend, first: usize) -> String {
        self.condition_at(first, backend.now_ms())
    }

    /// [`Fence::condition`] judged at `now`, an SQL expression for the
    /// database clock in milliseconds (e.g. a column of a CTE that read the
    /// clock once, so that the statement can also return the instant its
    /// check used).
    pub fn condition_at(&self, first: usize, now: &str) -> String {
        let (r, o, t) = (first, first + 1, first + 2);
        format!(
            "EXISTS (SELECT 1 FROM locks WHERE resource = ${r} AND owner = ${o} AND token = ${t} AND expires_at > {now})"
        )
    }

    /// Bind the condition's three values, in placeholder order.
    pub fn bind<'q>(
        &'q self,
        query: Query<'q, Any, AnyArguments<'q>>,
    ) -> Query<'q, Any, AnyArguments<'q>> {
        query
            .bind(self.resource.as_str())
            .bind(self.owner.as_str())
            .bind(self.token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_condition_numbers_its_own_placeholders() {
        let fence = Fence::new("plan:p", "me", 7);
        let sql = fence.condition(Backend::Sqlite, 4);
        assert!(
            sql.contains("resource = $4 AND owner = $5 AND token = $6"),
            "{sql}"
        );
        assert!(sql.contains("unixepoch"), "{sql}");
        assert!(fence
            .condition(Backend::Postgres, 1)
            .contains("clock_timestamp()"));
    }
}
