-- The note a customer sent with a Meta cart ("for delivery at 7"), kept on the order for the
-- shop. A note that asks something of the kitchen ("one without cheese") places no order: the
-- customer is asked instead. It is personal data: erased with the customer, cleared after
-- PERSONAL_DATA_RETENTION_DAYS like the order's customer_name.
--
-- Expand only: workers of the release before write no note, and read none.
ALTER TABLE orders ADD COLUMN note text;
