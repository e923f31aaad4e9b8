-- A sender's messages recorded in one batch get their ids in the order they arrived.
--
-- 031 inserted the batch's messages sorted by (source, message_id), so that two batches take
-- their row locks in one order, and each row's identity was drawn as it was inserted: the ids
-- followed the message ids, which are random, not the arrival order. A payload that carried a
-- sender's "2 margherita" and then "cancel" (Meta delivers a backlog so, after an outage) could
-- give the cancel the lower id, and the outbox sweep publishes in id order: the cancel ran first.
-- The ids are now drawn first, as many as the batch's messages, and handed out in arrival order
-- (ord); the rows are still inserted, and locked, in the sorted order.
--
-- Otherwise as 031: the same signature, result and lock order.
CREATE OR REPLACE FUNCTION wagate_record_batch(items text, rate_limits text, lease_seconds integer)
RETURNS TABLE (ord integer, outcome text, row_id bigint, queued_count integer, advanced_count integer)
LANGUAGE plpgsql VOLATILE AS $fn$
#variable_conflict use_column
DECLARE
  batch jsonb := items::jsonb;
  recorded_rows jsonb;
  -- Looked up once a call, not once a message.
  id_sequence regclass := pg_get_serial_sequence('webhook_messages', 'id')::regclass;
BEGIN
  WITH input AS (
    SELECT * FROM jsonb_to_recordset(batch) AS x(
      ord integer, kind text, source text, message_id text, sender text, sender_key text, business text,
      message_type text, ts double precision, verdict text, copies integer, response_ms integer,
      payload jsonb, raw_body text, reason text)
    WHERE x.kind <> 'status'
  ),
  -- As many ids as messages, handed out in arrival order whatever order nextval ran in.
  ids AS (
    SELECT s.id, row_number() OVER (ORDER BY s.id) AS rank
    FROM (SELECT nextval(id_sequence) AS id FROM input) s
  ),
  arrived AS (
    SELECT i.*, row_number() OVER (ORDER BY i.ord) AS rank FROM input i
  ),
  recorded AS (
    INSERT INTO webhook_messages AS m (id, webhook_source, message_id, phone_number, sender_key, business_number,
      message_type, status, duplicate_count, response_time_ms, message_timestamp, payload, raw_body, last_error)
    OVERRIDING SYSTEM VALUE
    SELECT ids.id, i.source, i.message_id, i.sender, i.sender_key, i.business, i.message_type, i.verdict,
           i.copies - 1, i.response_ms, to_timestamp(i.ts), i.payload, i.raw_body, i.reason
    FROM arrived i JOIN ids USING (rank)
    ORDER BY i.source, i.message_id
    ON CONFLICT (webhook_source, message_id) DO UPDATE SET
      duplicate_count = m.duplicate_count + EXCLUDED.duplicate_count + 1,
      last_duplicate_at = now()
    RETURNING m.id, m.webhook_source, m.message_id, m.status, (m.xmax = 0) AS inserted
  )
  SELECT coalesce(jsonb_agg(to_jsonb(recorded)), '[]'::jsonb) INTO recorded_rows FROM recorded;

  RETURN QUERY
WITH input AS (
  SELECT * FROM jsonb_to_recordset(batch) AS x(
    ord integer, kind text, source text, message_id text, sender text, sender_key text,
    verdict text, ts double precision, payload jsonb, receipt text, traceparent text)
),
recorded AS (
  SELECT * FROM jsonb_to_recordset(recorded_rows) AS r(id bigint, webhook_source text, message_id text, status text, inserted boolean)
),
messages AS (
  SELECT i.ord, i.kind, i.source, i.sender_key, i.traceparent, r.id, r.status, r.inserted
  FROM input i JOIN recorded r ON r.webhook_source = i.source AND r.message_id = i.message_id
  WHERE i.kind <> 'status'
),
limits AS (
  SELECT key AS source, (value->>'max')::integer AS max_requests, (value->>'window')::integer AS window_seconds
  FROM jsonb_each(rate_limits::jsonb)
),
-- Only messages this batch inserted count: a copy another batch recorded first is a duplicate.
candidates AS (
  SELECT m.ord, m.id, m.source, m.sender_key,
         row_number() OVER (PARTITION BY m.source, m.sender_key ORDER BY m.ord) AS position
  FROM messages m
  WHERE m.kind = 'message' AND m.inserted AND m.status = 'queued'
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
over_limit AS (
  SELECT c.id
  FROM candidates c
  JOIN per_sender p ON p.source = c.source AND p.sender_key = c.sender_key
  JOIN counted k ON k.webhook_source = c.source AND k.phone_number = c.sender_key
  WHERE (k.request_count - p.n + c.position) > k.max_requests
),
limited AS (
  UPDATE webhook_messages w SET status = 'rate_limited'
  FROM over_limit o WHERE w.id = o.id
  RETURNING w.id
),
queued AS (
  INSERT INTO outbox (webhook_message_id, traceparent, lease_until)
  SELECT m.id, m.traceparent, now() + make_interval(secs => lease_seconds)
  FROM messages m
  WHERE m.inserted AND m.status = 'queued' AND m.id NOT IN (SELECT id FROM over_limit)
  RETURNING webhook_message_id
),
receipts AS (
  INSERT INTO message_statuses (webhook_source, message_id, status, recipient, status_timestamp, payload)
  SELECT i.source, i.message_id, i.receipt,
         CASE WHEN erased.id IS NULL THEN i.sender END, to_timestamp(i.ts),
         CASE WHEN erased.id IS NULL THEN i.payload END
  FROM input i
  LEFT JOIN LATERAL (
    (SELECT o.id FROM outbound_messages o
     WHERE o.webhook_source = i.source AND o.provider_message_id = i.message_id AND o.recipient = 'erased')
    UNION ALL
    (SELECT o.id FROM outbound_messages o
     WHERE o.recipient = 'erased' AND o.earlier_provider_message_ids IS NOT NULL
       AND o.earlier_provider_message_ids @> ARRAY[i.message_id] AND o.webhook_source = i.source)
    LIMIT 1
  ) erased ON true
  WHERE i.kind = 'status'
  ORDER BY i.source, i.message_id, i.receipt
  ON CONFLICT (webhook_source, message_id, status) DO NOTHING
  RETURNING webhook_source, message_id, status
),
-- A receipt moves its reply's delivery status forward only (sent < delivered < read; failed
-- is final), so a late "sent" never overwrites "read". The replies are locked in id order
-- first, so two batches advancing the same replies take their locks in the same order.
furthest AS (
  SELECT DISTINCT ON (webhook_source, message_id) webhook_source, message_id, status
  FROM receipts ORDER BY webhook_source, message_id, wagate_receipt_rank(status) DESC
),
locked AS MATERIALIZED (
  SELECT o.id, o.webhook_source, o.provider_message_id, f.status
  FROM outbound_messages o JOIN furthest f ON o.webhook_source = f.webhook_source AND o.provider_message_id = f.message_id
  ORDER BY o.id
  FOR UPDATE OF o
),
advanced AS (
  UPDATE outbound_messages o SET delivery_status = l.status, updated_at = now()
  FROM locked l
  WHERE o.id = l.id
    AND wagate_receipt_rank(l.status) > wagate_receipt_rank(o.delivery_status)
    AND wagate_receipt_rank(o.delivery_status) < 100
  RETURNING o.id
)
SELECT m.ord,
       CASE WHEN NOT m.inserted THEN 'duplicate' WHEN m.id IN (SELECT id FROM limited) THEN 'rate_limited' ELSE m.status END,
       m.id,
       (SELECT count(*) FROM queued)::integer,
       (SELECT count(*) FROM advanced)::integer
FROM messages m
UNION ALL
SELECT i.ord, CASE WHEN x.message_id IS NULL THEN 'status_duplicate' ELSE 'status' END,
       (SELECT min(l.id) FROM locked l WHERE l.webhook_source = i.source AND l.provider_message_id = i.message_id),
       NULL, NULL
FROM input i LEFT JOIN receipts x ON x.webhook_source = i.source AND x.message_id = i.message_id AND x.status = i.receipt
WHERE i.kind = 'status';
END
$fn$;
