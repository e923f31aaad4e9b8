-- Each mark of a reply as 'sending' writes a token of its own attempt here. An attempt whose
-- mark went unanswered (the connection dropped after the commit) calls nothing, and hands its
-- token on with the message's retry: the next attempt may then take over a reply still
-- 'sending' under that token, where one left 'sending' by an attempt that may have called the
-- provider stays unknown. Nullable with no default, so adding it rewrites nothing.
ALTER TABLE outbound_messages ADD COLUMN sending_attempt uuid;
