-- wagate: no transaction
-- "cancel" and "status" read a sender's newest order whatever its status. The partial index of
-- 002 holds open orders only, so a sender with none had every order of the retention scanned.
-- CONCURRENTLY, so that workers keep writing while it builds. If the build fails, it leaves an
-- invalid index: DROP INDEX CONCURRENTLY orders_by_sender_idx, then migrate again.
CREATE INDEX CONCURRENTLY orders_by_sender_idx ON orders (webhook_source, sender_key, id DESC)
