-- wagate: no transaction
-- Workers look for replies an operator's resend left 'sending' or 'retry' (the command killed,
-- or the database gone before it could put the reply back) to mark them unknown again; the
-- partial index keeps that to the few replies in between, however large the table grows.
-- CONCURRENTLY, so that workers keep writing while it builds. If the build fails, it leaves an
-- invalid index: DROP INDEX CONCURRENTLY outbound_messages_in_between_idx, then migrate again.
CREATE INDEX CONCURRENTLY outbound_messages_in_between_idx ON outbound_messages (updated_at) WHERE status IN ('sending', 'retry')
