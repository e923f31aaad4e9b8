-- The hours of webhook_performance_stats in UTC, as the stats endpoint counts them: 001's
-- date_trunc('hour', created_at) cut them in the session's time zone, so two operators (or a
-- server set up in a zone of half hours) saw other numbers for "the same hour". The same columns
-- and types, so old pods and the operators' queries read it unchanged.
CREATE OR REPLACE VIEW webhook_performance_stats AS
SELECT
  date_trunc('hour', created_at, 'UTC')                                  AS hour,
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
