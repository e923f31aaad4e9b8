-- The ledger's batch write as one function, so that it can take advisory locks first.
--
-- Concurrent copies of one new message (a provider delivering it twice at once, to two
-- pods) used to be told apart only by the unique key: both batches saw the message as new,
-- both counted it against the sender's rate limit, and the loser then became a duplicate.
-- Now each batch first takes a transaction-level advisory lock per (source, message id),
-- in ascending key order so that two batches cannot deadlock on them. A batch that waited
-- for a lock runs its statement with a fresh snapshot (each statement of a volatile
-- PL/pgSQL function gets its own under READ COMMITTED), so it sees the other batch's row
-- and counts nothing. The locks go with the transaction: one call, one round trip, one commit.
--
-- Order of work inside the statement, which is also the order in which rows are locked:
--   1. rate-limit counters, sorted by sender (only messages not seen before count);
--   2. messages, sorted by (source, message id): new ones inserted, known ones get
--      duplicate_count + 1;
--   3. outbox rows for the messages that end up queued;
--   4. status receipts, once per (source, message id, status), and the reply they concern.
-- The INSERT ... SELECT ... ORDER BY of step 2 consumes step 1 in full before inserting.
--
-- items: json array of ledger rows; rate_limits: {"whatsapp": {"max", "window"}, ...};
-- lease_seconds: how long the calling process owns the new outbox rows.
CREATE FUNCTION wagate_record_batch(items text, rate_limits text, lease_seconds integer)
RETURNS TABLE (ord integer, outcome text, row_id bigint, queued_count integer, advanced_count integer)
LANGUAGE plpgsql VOLATILE AS $fn$
#variable_conflict use_column
DECLARE
  batch jsonb := items::jsonb;
  lock_key bigint;
BEGIN
  FOR lock_key IN
    SELECT DISTINCT hashtextextended((x ->> 'source') || ':' || (x ->> 'message_id'), 0)
    FROM jsonb_array_elements(batch) AS x
    WHERE x ->> 'kind' <> 'status'
    ORDER BY 1
  LOOP
    PERFORM pg_advisory_xact_lock(lock_key);
  END LOOP;

  RETURN QUERY
WITH input AS (
  SELECT * FROM jsonb_to_recordset(batch) AS x(
    ord integer, kind text, source text, message_id text, sender text, sender_key text,
    business text, message_type text, ts double precision, verdict text, copies integer,
    response_ms integer, payload jsonb, raw_body text, reason text, receipt text, traceparent text)
),
limits AS (
  SELECT key AS source, (value->>'max')::integer AS max_requests, (value->>'window')::integer AS window_seconds
  FROM jsonb_each(rate_limits::jsonb)
),
candidates AS (
  SELECT i.ord, i.source, i.sender_key,
         row_number() OVER (PARTITION BY i.source, i.sender_key ORDER BY i.ord) AS position
  FROM input i
  WHERE i.kind = 'message' AND i.verdict = 'queued'
    AND NOT EXISTS (SELECT 1 FROM webhook_messages m WHERE m.webhook_source = i.source AND m.message_id = i.message_id)
),
per_sender AS (
  SELECT c.source, c.sender_key, count(*)::integer AS n, l.max_requests, l.window_seconds
  FROM candidates c JOIN limits l ON l.source = c.source
  GROUP BY c.source, c.sender_key, l.max_requests, l.window_seconds
),
counted AS (
  INSERT INTO webhook_rate_limits AS r (webhook_source, phone_number, request_count, window_start,
    max_requests, window_seconds, total_requests, violation_count, is_blocked, blocked_at, last_request_at)
  SELECT source, sender_key, n, now(), max_requests, window_seconds, n,
         greatest(n - max_requests, 0), n > max_requests, CASE WHEN n > max_requests THEN now() END, now()
  FROM per_sender
  ORDER BY source, sender_key
  ON CONFLICT (webhook_source, phone_number) DO UPDATE SET
    request_count   = wagate_window_base(r.window_start, r.request_count, EXCLUDED.window_seconds) + EXCLUDED.request_count,
    window_start    = CASE WHEN wagate_window_base(r.window_start, 1, EXCLUDED.window_seconds) = 0 THEN now() ELSE r.window_start END,
    max_requests    = EXCLUDED.max_requests,
    window_seconds  = EXCLUDED.window_seconds,
    total_requests  = r.total_requests + EXCLUDED.request_count,
    violation_count = r.violation_count
      + greatest(wagate_window_base(r.window_start, r.request_count, EXCLUDED.window_seconds) + EXCLUDED.request_count - EXCLUDED.max_requests, 0)
      - greatest(wagate_window_base(r.window_start, r.request_count, EXCLUDED.window_seconds) - EXCLUDED.max_requests, 0),
    is_blocked      = wagate_window_base(r.window_start, r.request_count, EXCLUDED.window_seconds) + EXCLUDED.request_count > EXCLUDED.max_requests,
    blocked_at      = CASE
      WHEN wagate_window_base(r.window_start, r.request_count, EXCLUDED.window_seconds) + EXCLUDED.request_count <= EXCLUDED.max_requests THEN NULL
      WHEN r.is_blocked AND wagate_window_base(r.window_start, 1, EXCLUDED.window_seconds) > 0 THEN r.blocked_at
      ELSE now() END,
    last_request_at = now()
  RETURNING r.webhook_source, r.phone_number, r.request_count, r.max_requests
),
rated AS (
  SELECT c.ord, (k.request_count - p.n + c.position) > k.max_requests AS over_limit
  FROM candidates c
  JOIN per_sender p ON p.source = c.source AND p.sender_key = c.sender_key
  JOIN counted k ON k.webhook_source = c.source AND k.phone_number = c.sender_key
),
recorded AS (
  INSERT INTO webhook_messages AS m (webhook_source, message_id, phone_number, sender_key, business_number,
    message_type, status, duplicate_count, response_time_ms, message_timestamp, payload, raw_body, last_error)
  SELECT i.source, i.message_id, i.sender, i.sender_key, i.business, i.message_type,
         CASE WHEN rated.over_limit THEN 'rate_limited' ELSE i.verdict END,
         i.copies - 1, i.response_ms, to_timestamp(i.ts), i.payload, i.raw_body, i.reason
  FROM input i LEFT JOIN rated ON rated.ord = i.ord
  WHERE i.kind <> 'status'
  ORDER BY i.source, i.message_id
  ON CONFLICT (webhook_source, message_id) DO UPDATE SET
    duplicate_count = m.duplicate_count + EXCLUDED.duplicate_count + 1,
    last_duplicate_at = now()
  RETURNING m.id, m.webhook_source, m.message_id, m.status, (m.xmax = 0) AS inserted
),
queued AS (
  INSERT INTO outbox (webhook_message_id, traceparent, lease_until)
  SELECT r.id, i.traceparent, now() + make_interval(secs => lease_seconds)
  FROM recorded r JOIN input i ON i.source = r.webhook_source AND i.message_id = r.message_id
  WHERE r.inserted AND r.status = 'queued'
  RETURNING webhook_message_id
),
receipts AS (
  INSERT INTO message_statuses (webhook_source, message_id, status, recipient, status_timestamp, payload)
  SELECT source, message_id, receipt, sender, to_timestamp(ts), payload
  FROM input WHERE kind = 'status'
  ORDER BY source, message_id, receipt
  ON CONFLICT (webhook_source, message_id, status) DO NOTHING
  RETURNING webhook_source, message_id, status
),
-- A receipt moves its reply's delivery status forward only (sent < delivered < read; failed
-- is final), so a late "sent" never overwrites "read".
advanced AS (
  UPDATE outbound_messages o SET delivery_status = x.status, updated_at = now()
  FROM (SELECT DISTINCT ON (webhook_source, message_id) webhook_source, message_id, status
        FROM receipts ORDER BY webhook_source, message_id, wagate_receipt_rank(status) DESC) x
  WHERE o.webhook_source = x.webhook_source AND o.provider_message_id = x.message_id
    AND wagate_receipt_rank(x.status) > wagate_receipt_rank(o.delivery_status)
    AND wagate_receipt_rank(o.delivery_status) < 100
  RETURNING o.id
)
SELECT i.ord, CASE WHEN r.inserted THEN r.status ELSE 'duplicate' END AS outcome, r.id AS row_id,
       (SELECT count(*) FROM queued)::integer AS queued_count,
       (SELECT count(*) FROM advanced)::integer AS advanced_count
FROM input i JOIN recorded r ON r.webhook_source = i.source AND r.message_id = i.message_id
UNION ALL
SELECT i.ord, CASE WHEN x.message_id IS NULL THEN 'status_duplicate' ELSE 'status' END, NULL, NULL, NULL
FROM input i LEFT JOIN receipts x ON x.webhook_source = i.source AND x.message_id = i.message_id AND x.status = i.receipt
WHERE i.kind = 'status';
END
$fn$;
