-- The wait (waiting_until) written together with retry_attempt. A release that does not know
-- retry_attempt (0.3.4) rewrites waiting_until when it hands a message to a retry tier and leaves
-- the try of an earlier life in place (one from before a dead letter it replayed, or before a
-- rollback): its tier's copy, which carries the lower try and comes back a moment before the
-- wait it wrote (computed after the broker's confirm), was skipped as stale, acked, and the
-- message left queued until the stuck-message alert. The claim now skips a copy as stale only
-- while the record's wait is the one written with its try. Nullable with no default, so adding it
-- rewrites nothing; a record without it is never skipped.
ALTER TABLE webhook_messages ADD COLUMN retry_attempt_until timestamptz;
