-- An operator's resend of a reply the provider accepted and then reported undelivered
-- (`wagate replies resend`) sends a new message with an id of its own: the reply's
-- provider_message_id and delivery_status then follow that message, and the ids of the earlier
-- ones, whose receipts said failed, are kept here, oldest first. Nullable with no default, so
-- adding it rewrites nothing.
ALTER TABLE outbound_messages ADD COLUMN earlier_provider_message_ids text[];
