-- Work shards spread over the live workers (see README, "The worker").
--
-- work_shard_settings: the shard count of each queue group (QUEUE_PREFIX). A process whose
-- WORK_SHARDS differs refuses to start; `wagate reshard --to N` changes it. paused is set
-- while a reshard moves messages, so that every worker releases its shards.
CREATE TABLE work_shard_settings (
  queue_prefix text        PRIMARY KEY,
  shard_count  integer     NOT NULL CHECK (shard_count BETWEEN 1 AND 256),
  paused       boolean     NOT NULL DEFAULT false,
  updated_at   timestamptz NOT NULL DEFAULT now()
);

-- One row per worker process; it is live while heartbeat_at is recent. A worker heartbeats
-- only while it holds a broker channel.
CREATE TABLE worker_members (
  queue_prefix text        NOT NULL,
  member_id    text        NOT NULL,
  heartbeat_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (queue_prefix, member_id)
);

-- Which worker holds each shard's consumer. owner is NULL once its holder has finished the
-- shard's messages in hand, cancelled the consumer and recorded the release; a new owner
-- subscribes only after that, or after the old owner's heartbeat has expired.
CREATE TABLE work_shard_owners (
  queue_prefix text        NOT NULL,
  shard        integer     NOT NULL CHECK (shard >= 0),
  owner        text,
  changed_at   timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (queue_prefix, shard)
);
