-- A stopping worker says so, and drops out of the shard assignment at once.
--
-- It keeps heartbeating until every shard it holds is released (src/worker/shard-coordinator.ts),
-- so that nobody takes a shard over before its messages in hand are finished. Counted as live,
-- it also kept its share in every other worker's assignment, and the shards it had already
-- released went unconsumed until its last one was done, or, after a drain that timed out, until
-- its heartbeat expired. A leaving member is left out of the assignment but still counts as
-- live where a take checks whether an owner's heartbeat has expired. Releases before this one
-- neither set nor read it.
ALTER TABLE worker_members ADD COLUMN leaving boolean NOT NULL DEFAULT false;
