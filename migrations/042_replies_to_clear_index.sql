-- wagate: no transaction
-- The replies that still hold a body, for cleanup's personal-data clearing. It walked the
-- created_at index from the oldest reply kept, so each night it read every reply of
-- ORDER_RETENTION_DAYS (a year by default) to clear the one day's that had come due. This index
-- holds only the replies of the last PERSONAL_DATA_RETENTION_DAYS and those still on their way.
-- A reply's insert and each of its receipts' updates (never heap-only: they set updated_at,
-- which 025's index holds) add an entry while it has a body.
-- CONCURRENTLY, so that workers keep writing replies and the ingest its receipts while it builds.
CREATE INDEX CONCURRENTLY outbound_messages_body_kept_idx ON outbound_messages (created_at, id)
  WHERE body IS NOT NULL
