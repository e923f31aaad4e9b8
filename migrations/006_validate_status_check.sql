-- Checks the existing rows against the constraint 005 added NOT VALID, without blocking writes.
ALTER TABLE webhook_messages VALIDATE CONSTRAINT webhook_messages_status_check;
