//! The lock statements, written once with `$n` placeholders (both SQLite and
//! PostgreSQL accept them) and specialised per backend for the clock, the
//! token source and `GREATEST`.

use crate::db::{Backend, Db};

/// Prepared SQL text for one backend.
#[derive(Debug, Clone)]
pub(crate) struct LockSql {
    pub acquire: String,
    pub holder: String,
    pub renew: String,
    pub release: &'static str,
    pub release_all: &'static str,
    pub list: String,
    pub force_release: &'static str,
    pub bump_counter: &'static str,
    pub check: String,
    /// A tree lock's whole attempt, three statements with $1–$8 as
    /// `tree_acquire_checked`: the oldest live tree lock overlapping $8
    /// (its holder, for the conflict), the insert made only if there is
    /// none ([`tree_acquire_gated`]), and the holder of $1 (for a name
    /// held as an ordinary lease). One transaction, one request: on
    /// PostgreSQL after the [`tree_gate`] locks, with its values written
    /// in (see [`inline`]).
    pub tree_try: [String; 3],
    /// SQLite, inside an open write transaction: the overlap check and the
    /// insert made only if it finds nothing, sent together. $1 resource,
    /// $2 owner, $3 operation, $4 host, $5 pid, $6 user, $7 ttl ms, $8 the
    /// tree key.
    pub tree_acquire_checked: String,
}

impl LockSql {
    pub(crate) fn new(db: &Db) -> Self {
        let now = db.now_ms();
        let greatest = db.greatest();
        LockSql {
            acquire: acquire(db.backend),
            tree_try: tree_try(db.backend),
            tree_acquire_checked: tree_acquire_checked(db.backend),
            holder: format!(
                "SELECT owner, operation, holder_host, holder_pid, holder_user, acquired_at, expires_at, {now} AS now
                 FROM locks WHERE resource = $1"
            ),
            renew: format!(
                "UPDATE locks SET expires_at = {greatest}(expires_at, {now} + $4)
                 WHERE resource = $1 AND owner = $2 AND token = $3 AND expires_at > {now}
                 RETURNING expires_at"
            ),
            release: release(db.backend),
            release_all: "DELETE FROM locks WHERE owner = $1",
            list: format!(
                "SELECT resource, owner, token, operation, holder_host, holder_pid, holder_user, holds, acquired_at, expires_at,
                        CASE WHEN expires_at <= {now} THEN 1 ELSE 0 END AS stale
                 FROM locks ORDER BY resource"
            ),
            force_release: "DELETE FROM locks WHERE resource = $1 RETURNING owner, token",
            bump_counter: match db.backend {
                Backend::Sqlite => "UPDATE lock_counter SET value = value + 1 WHERE id = 1",
                Backend::Postgres => "SELECT nextval('lock_token_seq')",
            },
            check: format!(
                "SELECT expires_at FROM locks WHERE resource = $1 AND owner = $2 AND token = $3 AND expires_at > {now}"
            ),
        }
    }
}

/// The SQL expression granting a fresh fencing token.
pub(crate) fn new_token(backend: Backend) -> &'static str {
    // On SQLite the statement is its own write transaction (the write lock
    // is taken before anything is read), so the counter cannot move under
    // it; a trigger (migration 2) advances the counter to the token granted.
    match backend {
        Backend::Sqlite => "(SELECT value + 1 FROM lock_counter WHERE id = 1)",
        Backend::Postgres => "nextval('lock_token_seq')",
    }
}

/// Take a lease: insert, take over an expired row, or extend our own
/// (re-entrant). $1 resource, $2 owner, $3 operation, $4 host, $5 pid,
/// $6 user, $7 ttl ms.
fn acquire(backend: Backend) -> String {
    let (now, greatest, token) = (backend.now_ms(), backend.greatest(), new_token(backend));
    // "live": the existing row belongs to the same owner and has not expired.
    let live = "(locks.owner = excluded.owner AND locks.expires_at > excluded.acquired_at)";
    format!(
        "INSERT INTO locks (resource, owner, token, operation, holder_host, holder_pid, holder_user, holds, acquired_at, expires_at)
         VALUES ($1, $2, {token}, $3, $4, $5, $6, 1, {now}, {now} + $7)
         ON CONFLICT (resource) DO UPDATE SET
           token       = CASE WHEN {live} THEN locks.token ELSE excluded.token END,
           holds       = CASE WHEN {live} THEN locks.holds + 1 ELSE 1 END,
           acquired_at = CASE WHEN {live} THEN locks.acquired_at ELSE excluded.acquired_at END,
           expires_at  = CASE WHEN {live} THEN {greatest}(locks.expires_at, excluded.expires_at) ELSE excluded.expires_at END,
           operation   = CASE WHEN {live} THEN locks.operation ELSE excluded.operation END,
           owner       = excluded.owner,
           holder_host = excluded.holder_host,
           holder_pid  = excluded.holder_pid,
           holder_user = excluded.holder_user
         WHERE locks.owner = excluded.owner OR locks.expires_at <= excluded.acquired_at
         RETURNING token, holds, acquired_at, expires_at, {now} AS granted_at"
    )
}

/// See [`LockSql::tree_try`].
fn tree_try(backend: Backend) -> [String; 3] {
    [
        format!(
            "SELECT resource, owner, operation, holder_host, holder_pid, holder_user, acquired_at, expires_at
             FROM locks WHERE {overlaps} ORDER BY acquired_at LIMIT 1",
            overlaps = overlapping(backend)
        ),
        tree_acquire_gated(backend),
        "SELECT owner, operation, holder_host, holder_pid, holder_user, acquired_at, expires_at
         FROM locks WHERE resource = $1"
            .to_string(),
    ]
}

/// The live tree locks that overlap $8 (a `WHERE` condition on `locks`).
fn overlapping(backend: Backend) -> String {
    format!(
        "tree_path IS NOT NULL AND expires_at > {now}
           AND (substr($8, 1, length(tree_path)) = tree_path OR substr(tree_path, 1, length($8)) = $8)",
        now = backend.now_ms()
    )
}

/// Whether a live tree lock overlaps $8, then the insert of
/// [`tree_acquire_gated`], as two statements of one request.
fn tree_acquire_checked(backend: Backend) -> String {
    format!(
        "SELECT resource FROM locks WHERE {overlaps} LIMIT 1;
         {insert}",
        overlaps = overlapping(backend),
        insert = tree_acquire_gated(backend)
    )
}

/// Insert a tree lock, or take over an expired row of the same resource
/// (never re-entrant), only if no live tree lock overlaps $8: one
/// statement, no row if it took nothing.
fn tree_acquire_gated(backend: Backend) -> String {
    let (now, token) = (backend.now_ms(), new_token(backend));
    format!(
        "INSERT INTO locks (resource, owner, token, operation, holder_host, holder_pid, holder_user, holds, acquired_at, expires_at, tree_path)
         SELECT $1, $2, {token}, $3, $4, $5, $6, 1, {now}, {now} + $7, $8
         WHERE NOT EXISTS (SELECT 1 FROM locks WHERE {overlaps})
         {takeover}
         RETURNING token, holds, acquired_at, expires_at, {now} AS granted_at",
        overlaps = overlapping(backend),
        takeover = takeover("excluded.tree_path")
    )
}

/// The key once taken exclusively by every tree-lock acquisition on
/// PostgreSQL ("locktree" in ASCII), now shared by each: an older host
/// that still takes it exclusively excludes every newer one.
const TREE_GATE: i64 = 7813573191677404517;

/// PostgreSQL: the transaction-scoped advisory locks taken before a tree
/// lock's overlap check, so that two acquisitions that could overlap run
/// their check and insert one after the other (two different rows would
/// otherwise both pass the check): [`TREE_GATE`] and every proper
/// ancestor of the tree key shared, the key itself exclusive. A tree and
/// one inside it meet on the outer key (exclusive against shared); two
/// disjoint trees share only ancestors and go on at once. Taken in one
/// order (gate, then by depth), so that acquisitions cannot deadlock on
/// them. Keys are [`path_lock_key`]s: a collision only serialises two
/// acquisitions needlessly. `None` on SQLite (one writer at a time).
pub(crate) fn tree_gate(backend: Backend, key: &str) -> Option<String> {
    if backend == Backend::Sqlite {
        return None;
    }
    let mut locks = vec![format!("pg_advisory_xact_lock_shared({TREE_GATE})")];
    for (i, _) in key.match_indices('/').filter(|(i, _)| *i + 1 < key.len()) {
        let ancestor = path_lock_key(&key[..=i]);
        locks.push(format!("pg_advisory_xact_lock_shared({ancestor})"));
    }
    locks.push(format!("pg_advisory_xact_lock({})", path_lock_key(key)));
    Some(format!("SELECT {}", locks.join(", ")))
}

/// A value written into a statement sent without parameters.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Literal<'a> {
    /// A string.
    Text(&'a str),
    /// An integer.
    Int(i64),
}

/// PostgreSQL: `sql` with every `$n` replaced by `args[n - 1]` written as a
/// literal, for a request of several statements (a simple query, which
/// takes no parameters). Strings go as escape strings (`E'…'`, backslash
/// and quote doubled), read the same whatever
/// `standard_conforming_strings` says. `sql` is the crate's own text, in
/// which `$` appears only as a placeholder. A NUL, which PostgreSQL's text
/// cannot hold, is refused.
pub(crate) fn inline(sql: &str, args: &[Literal<'_>]) -> Result<String, sqlx::Error> {
    let mut out = String::with_capacity(sql.len() + 64);
    let mut rest = sql;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let digits = rest[at + 1..]
            .bytes()
            .take_while(u8::is_ascii_digit)
            .count();
        let n: usize = rest[at + 1..at + 1 + digits].parse().unwrap_or(0);
        let arg = n.checked_sub(1).and_then(|i| args.get(i));
        match arg {
            // In brackets, so that `-` never meets a `-` before it.
            Some(Literal::Int(v)) => out.push_str(&format!("({v})")),
            Some(Literal::Text(t)) if t.contains('\0') => {
                return Err(sqlx::Error::Encode(
                    "a NUL byte cannot be sent to PostgreSQL".into(),
                ))
            }
            Some(Literal::Text(t)) => {
                out.push_str("E'");
                out.push_str(&t.replace('\\', "\\\\").replace('\'', "''"));
                out.push('\'');
            }
            None => {
                return Err(sqlx::Error::Protocol(format!(
                    "no value for `${n}` in an inlined statement"
                )))
            }
        }
        rest = &rest[at + 1 + digits..];
    }
    out.push_str(rest);
    Ok(out)
}

/// The advisory lock key of a tree key: its 64-bit FNV-1a hash. Every
/// host of a fleet must compute the same: this function is part of the
/// database format.
pub(crate) fn path_lock_key(key: &str) -> i64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in key.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash as i64
}

/// The `ON CONFLICT` clause of a lease that is never re-entrant: the new
/// row replaces an existing one only once that one has expired (a fresh
/// token, one hold); `tree_path` is the SQL value for the new row's tree.
pub(crate) fn takeover(tree_path: &str) -> String {
    format!(
        "ON CONFLICT (resource) DO UPDATE SET
           token       = excluded.token,
           holds       = 1,
           acquired_at = excluded.acquired_at,
           expires_at  = excluded.expires_at,
           operation   = excluded.operation,
           owner       = excluded.owner,
           holder_host = excluded.holder_host,
           holder_pid  = excluded.holder_pid,
           holder_user = excluded.holder_user,
           tree_path   = {tree_path}
         WHERE locks.expires_at <= excluded.acquired_at"
    )
}

/// Count one hold down, as part of another statement (a status write
/// that ends a phase): $first resource, $first+1 owner, $first+2 token. On
/// SQLite one statement (a trigger deletes the row with the last hold), on
/// PostgreSQL two, each a `WITH` clause of the enclosing statement. Durable
/// like the write it goes with.
pub(crate) fn release_sql(backend: Backend, first: usize) -> Vec<String> {
    let (r, o, t) = (first, first + 1, first + 2);
    let lease = format!("resource = ${r} AND owner = ${o} AND token = ${t}");
    match backend {
        Backend::Sqlite => vec![format!("UPDATE locks SET holds = holds - 1 WHERE {lease}")],
        Backend::Postgres => vec![
            format!("DELETE FROM locks WHERE {lease} AND holds <= 1"),
            format!("UPDATE locks SET holds = holds - 1 WHERE {lease} AND holds > 1"),
        ],
    }
}

/// End a lease whatever its holds, as part of another statement (the
/// write that finishes a fleet worker's plan ends the claim's lease with
/// the session's own holds): $first resource, $first+1 owner, $first+2
/// token.
pub(crate) fn end_sql(first: usize) -> String {
    let (r, o, t) = (first, first + 1, first + 2);
    format!("DELETE FROM locks WHERE resource = ${r} AND owner = ${o} AND token = ${t}")
}

/// Count one hold down (the row goes with the last one).
fn release(backend: Backend) -> &'static str {
    match backend {
        // A trigger (migration 2) deletes the row when the last hold goes.
        Backend::Sqlite => "UPDATE locks SET holds = holds - 1 WHERE resource = $1 AND owner = $2 AND token = $3",
        // One statement, committed without waiting for the WAL flush
        // (`synchronous_commit = off` for this transaction only). A release
        // lost in a server crash brings a lease back until it expires: that
        // delays the next holder, never admits two. And any later
        // synchronous commit (the next acquire) flushes the WAL up to and
        // past this release anyway.
        Backend::Postgres => "WITH gone AS (DELETE FROM locks WHERE resource = $1 AND owner = $2 AND token = $3 AND holds <= 1 RETURNING 1),
                      down AS (UPDATE locks SET holds = holds - 1 WHERE resource = $1 AND owner = $2 AND token = $3 AND holds > 1 RETURNING 1)
                 SELECT set_config('synchronous_commit', 'off', true)",
    }
}

#[cfg(test)]
mod tests {
    use super::{inline, Literal};

    #[test]
    fn inlined_values_are_literals_and_placeholders_are_whole_numbers() {
        let args: Vec<Literal<'_>> = (1..=10)
            .map(|i| {
                if i == 10 {
                    Literal::Int(-10)
                } else {
                    Literal::Int(i)
                }
            })
            .collect();
        // `$10` is the tenth value, not the first followed by a zero; a
        // negative number cannot start a comment after a minus.
        assert_eq!(
            inline("$1 + $10 - $10", &args).unwrap(),
            "(1) + (-10) - (-10)"
        );
        let text = [Literal::Text(r"it's \'; --")];
        assert_eq!(inline("x = $1", &text).unwrap(), r"x = E'it''s \\''; --'");
        assert!(
            inline("$2", &text).is_err(),
            "a placeholder without a value"
        );
        assert!(inline("$1", &[Literal::Text("a\0b")]).is_err(), "a NUL");
    }
}
