-- The claim takes unfinished queue rows in priority order, then submission
-- order (src/fleet/sql.rs): an index in exactly that order over the
-- unfinished rows only, so that the claim reads the head of the queue
-- instead of sorting every unfinished row.
CREATE INDEX IF NOT EXISTS plan_queue_claim ON plan_queue (priority DESC, seq) WHERE done = 0;
