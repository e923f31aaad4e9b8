-- When a message parked in a retry tier is next due for a try (its tier's delay or the
-- provider's Retry-After). The autoscaler counts ready messages only (SPEC §10): a parked one
-- is queued but not ready, and counting it sent the workers to their maximum through every
-- provider outage, to wait there with nothing to do. Nullable without a default, so adding it
-- rewrites nothing and holds its lock only for an instant.
ALTER TABLE webhook_messages ADD COLUMN waiting_until timestamptz;
