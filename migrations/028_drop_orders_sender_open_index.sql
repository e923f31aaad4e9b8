-- wagate: no transaction
-- The partial index of 002 served "cancel" before 0.3.4, which looked for a sender's newest open
-- order. Since 0.3.4 every read of a sender's orders goes by orders_by_sender_idx (026), and this
-- index only cost each new order and each cancel a write. A 0.3.3 pod still running during the
-- upgrade reads the same rows through 026's index. CONCURRENTLY, so that workers keep writing.
DROP INDEX CONCURRENTLY IF EXISTS orders_sender_open_idx;
