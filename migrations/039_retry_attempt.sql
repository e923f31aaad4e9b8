-- The try a message was last handed to a retry tier for. A worker hands a failed message to its
-- next tier (with a confirm), then acks it; an ack lost with the channel brought the original
-- back to its shard at once, to be processed again with its provider's Retry-After ignored while
-- the tier's copy waited. A delivery whose try header is below this, while the tier's wait
-- (waiting_until) is under way, is such a stale copy, and the claim skips it. Reset wherever a
-- message is put back on the queue without its tier copy (stuck messages, dead letters
-- replayed). Nullable with no default, so adding it rewrites nothing.
ALTER TABLE webhook_messages ADD COLUMN retry_attempt smallint;
