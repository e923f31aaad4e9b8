-- One outbox sweep at a time across the ingest pods.
--
-- Two sweeps publishing neighbouring batches of a backlog at once interleave them on the
-- broker, and a sender's later message can reach its queue before an earlier one. A sweep
-- first takes this one-row lease (src/ledger/outbox-relay.ts), renews it for each batch and
-- gives it back at the end; a sweeper that dies loses it when it expires. A lease row rather
-- than an advisory lock: it holds no connection between statements, and works behind a
-- transaction-pooling proxy. Releases before this one never take it, and sweep as before.
CREATE TABLE outbox_sweeper (
  singleton   boolean     PRIMARY KEY DEFAULT true CHECK (singleton),
  holder      text,
  lease_until timestamptz NOT NULL DEFAULT '-infinity'
);
INSERT INTO outbox_sweeper DEFAULT VALUES;
