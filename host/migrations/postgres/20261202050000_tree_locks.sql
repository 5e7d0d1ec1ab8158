-- Tree locks: a lease that also records the canonical directory tree it
-- covers (a path ending in `/`). Acquiring one fails while a live tree lock
-- covers an ancestor, a descendant or the same tree (see src/locks/tree.rs);
-- ordinary leases leave it NULL. Acquisitions are serialised with a
-- transaction-scoped advisory lock.

ALTER TABLE locks ADD COLUMN IF NOT EXISTS tree_path TEXT;
