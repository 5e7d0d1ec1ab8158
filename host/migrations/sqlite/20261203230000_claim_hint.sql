-- The claim's hint (src/fleet/sql.rs): the claim that takes a plan's lease
-- also sets `claimed_until` (its start plus the lease length) on the queue
-- row, and the next claims pass over a row whose hint is in the future
-- without looking up its lease. A worker that lets go of a plan it did not
-- finish clears the hint in the request that releases the lease; a dead
-- worker's hint runs out no later than its lease, so rescue is never
-- delayed by it.
ALTER TABLE plan_queue ADD COLUMN claimed_until BIGINT NOT NULL DEFAULT 0;
