-- A message whose sender was erased before the worker reached it. The worker skips it, so
-- that no order or reply re-creates the personal data that erasure removed.
--
-- NOT VALID here and VALIDATE in the next migration (its own transaction): adding a checked
-- constraint would scan the table under an ACCESS EXCLUSIVE lock while old pods keep
-- writing during an upgrade. This takes that lock only for a moment; the scan runs later
-- under a lock that lets writes through.
ALTER TABLE webhook_messages DROP CONSTRAINT webhook_messages_status_check;
ALTER TABLE webhook_messages ADD CONSTRAINT webhook_messages_status_check
  CHECK (status IN ('queued', 'rate_limited', 'replay_rejected', 'malformed',
                    'processing', 'processed', 'unmatched', 'dead', 'erased')) NOT VALID;
