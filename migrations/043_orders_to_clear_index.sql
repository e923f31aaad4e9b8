-- wagate: no transaction
-- The orders that still hold a customer's name or note, for cleanup's personal-data clearing,
-- which read every order of ORDER_RETENTION_DAYS each night to clear one day's (see 042).
-- CONCURRENTLY, so that workers keep writing orders while it builds.
CREATE INDEX CONCURRENTLY orders_personal_data_kept_idx ON orders (created_at, id)
  WHERE customer_name IS NOT NULL OR note IS NOT NULL
