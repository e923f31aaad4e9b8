-- A message whose sender was erased before the worker reached it. The worker skips it, so
-- that no order or reply re-creates the personal data that erasure removed.
ALTER TABLE webhook_messages DROP CONSTRAINT webhook_messages_status_check;
ALTER TABLE webhook_messages ADD CONSTRAINT webhook_messages_status_check
  CHECK (status IN ('queued', 'rate_limited', 'replay_rejected', 'malformed',
                    'processing', 'processed', 'unmatched', 'dead', 'erased'));
