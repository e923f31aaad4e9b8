-- The shard count an interrupted `wagate reshard` was moving to once it had gathered every old
-- shard into its staging queue; NULL otherwise. From then on the old shards that stay hold
-- only what it had already distributed, each sender's earliest messages: a rerun that gathered
-- them again would put them behind the same senders' later ones, still in staging. The queues
-- alone cannot tell this apart from an interrupted gathering when the count grows (no old
-- shard is deleted), so the reshard records it here.
ALTER TABLE work_shard_settings ADD COLUMN gathered_for integer;
