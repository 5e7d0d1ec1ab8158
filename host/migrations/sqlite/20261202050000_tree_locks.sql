-- Tree locks: a lease that also records the canonical directory tree it
-- covers (a path ending in `/`). Acquiring one fails while a live tree lock
-- covers an ancestor, a descendant or the same tree (see src/locks/tree.rs);
-- ordinary leases leave it NULL.

ALTER TABLE locks ADD COLUMN tree_path TEXT;
