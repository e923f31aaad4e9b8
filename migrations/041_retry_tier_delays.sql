-- The retry tiers each group's processes have declared. A tier's messages dead-letter back to the
-- work exchange with their sender's shard key when they expire. After RETRY_DELAYS_MS changes, a
-- tier no longer listed still holds the retries it had; a reshard that knew only the new list
-- re-addressed none of them, and a shrink deleted the shard queues their keys named, so the
-- broker dropped them when they came back, leaving their records queued until the stuck-message
-- alert. The reshard re-addresses every recorded tier still on the broker.
CREATE TABLE retry_tier_delays (
  queue_prefix text        NOT NULL,
  delay_ms     integer     NOT NULL CHECK (delay_ms > 0),
  recorded_at  timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (queue_prefix, delay_ms)
);
