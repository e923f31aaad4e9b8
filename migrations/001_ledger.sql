-- The ingest ledger: every webhook message recorded once, rate-limit counters,
-- status receipts and the transactional outbox that feeds RabbitMQ.

CREATE TABLE webhook_messages (
  id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  webhook_source    text        NOT NULL CHECK (webhook_source IN ('whatsapp', 'twilio')),
  message_id        text        NOT NULL,
  phone_number      text,
  sender_key        text,
  business_number   text,
  message_type      text,
  status            text        NOT NULL CHECK (status IN ('queued', 'rate_limited', 'replay_rejected', 'malformed',
                                                         'processing', 'processed', 'unmatched', 'dead')),
  duplicate_count   integer     NOT NULL DEFAULT 0,
  response_time_ms  integer,
  message_timestamp timestamptz,
  -- Personal data (names, bodies, raw payloads) lives only in these two columns so that
  -- retention and erasure have one place to act on.
  payload           jsonb,
  raw_body          text,
  last_error        text,
  created_at        timestamptz NOT NULL DEFAULT now(),
  updated_at        timestamptz NOT NULL DEFAULT now(),
  last_duplicate_at timestamptz,
  CONSTRAINT webhook_messages_source_message_id_key UNIQUE (webhook_source, message_id)
);
CREATE INDEX webhook_messages_created_at_idx ON webhook_messages (created_at);
CREATE INDEX webhook_messages_rate_limited_idx ON webhook_messages (webhook_source, sender_key)
  WHERE status = 'rate_limited';

CREATE TABLE webhook_rate_limits (
  webhook_source   text        NOT NULL,
  phone_number     text        NOT NULL,
  request_count    integer     NOT NULL,
  window_start     timestamptz NOT NULL,
  -- The limit in force when the row was last touched, so that operators read it next to the count.
  max_requests     integer     NOT NULL,
  window_seconds   integer     NOT NULL,
  total_requests   bigint      NOT NULL DEFAULT 0,
  violation_count  bigint      NOT NULL DEFAULT 0,
  is_blocked       boolean     NOT NULL DEFAULT false,
  blocked_at       timestamptz,
  last_request_at  timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (webhook_source, phone_number)
);

CREATE TABLE message_statuses (
  id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  webhook_source   text        NOT NULL,
  message_id       text        NOT NULL,
  status           text        NOT NULL,
  recipient        text,
  status_timestamp timestamptz,
  payload          jsonb,
  created_at       timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT message_statuses_key UNIQUE (webhook_source, message_id, status)
);
CREATE INDEX message_statuses_created_at_idx ON message_statuses (created_at);

-- One row per queued message until RabbitMQ confirms it. The row is written in the same
-- transaction as the message, so a 200 always has either a confirmed publish or a row here.
-- lease_until keeps the relay of other processes away while the owner publishes.
CREATE TABLE outbox (
  webhook_message_id bigint      PRIMARY KEY REFERENCES webhook_messages (id) ON DELETE CASCADE,
  traceparent        text,
  lease_until        timestamptz NOT NULL,
  attempts           integer     NOT NULL DEFAULT 0,
  last_error         text,
  created_at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX outbox_lease_until_idx ON outbox (lease_until);

CREATE VIEW webhook_performance_stats AS
SELECT
  date_trunc('hour', created_at)                                         AS hour,
  webhook_source,
  count(*)                                                               AS total_messages,
  count(*) FILTER (WHERE status IN ('queued', 'processing', 'processed', 'unmatched')) AS accepted_messages,
  count(*) FILTER (WHERE status = 'rate_limited')                        AS rate_limited_messages,
  count(*) FILTER (WHERE status = 'replay_rejected')                     AS replay_rejected_messages,
  count(*) FILTER (WHERE status = 'malformed')                           AS malformed_messages,
  count(*) FILTER (WHERE status = 'dead')                                AS dead_messages,
  coalesce(sum(duplicate_count), 0)                                      AS total_duplicates,
  round(avg(response_time_ms)::numeric, 2)                               AS avg_response_time_ms,
  percentile_cont(0.95) WITHIN GROUP (ORDER BY response_time_ms)         AS p95_response_time_ms,
  max(response_time_ms)                                                  AS max_response_time_ms
FROM webhook_messages
GROUP BY 1, 2;

CREATE VIEW webhook_rate_limit_stats AS
SELECT
  webhook_source,
  phone_number,
  total_requests,
  request_count AS requests_in_window,
  max_requests,
  window_seconds,
  violation_count,
  is_blocked,
  window_start,
  last_request_at
FROM webhook_rate_limits;

-- The count that still belongs to the current rate-limit window: request_count while the
-- window is open, 0 once it has expired.
CREATE FUNCTION wagate_window_base(window_start timestamptz, request_count integer, window_seconds integer)
RETURNS integer LANGUAGE sql STABLE AS $$
  SELECT CASE WHEN window_start > now() - make_interval(secs => window_seconds) THEN request_count ELSE 0 END
$$;
