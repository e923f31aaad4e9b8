-- wagate: no transaction
-- The partial index of 002 served "cancel" before 0.3.4, which looked for a sender's newest open
-- order. Since 0.3.4 every read of a sender's orders goes by orders_by_sender_idx (026), and this
-- index only cost each new order and each cancel a write. 0.3.4 pods never read it; a 0.3.3 pod
-- (an upgrade straight to 0.3.5) reads the same rows through 026's index, built in the same run.
-- CONCURRENTLY, so that workers keep writing; it waits for transactions already open on orders.
DROP INDEX CONCURRENTLY IF EXISTS orders_sender_open_idx;
