-- wagate: no transaction
-- A receipt for the message that an operator's resend replaced (031) is checked against the
-- erased replies' earlier provider ids. Only erased replies that were resent are indexed, so
-- the index stays as small as they are few, and each receipt's check is one probe of it.
-- CONCURRENTLY, so that workers keep writing replies while it builds.
CREATE INDEX CONCURRENTLY outbound_messages_erased_earlier_ids_idx ON outbound_messages USING gin (earlier_provider_message_ids)
  WHERE recipient = 'erased' AND earlier_provider_message_ids IS NOT NULL
