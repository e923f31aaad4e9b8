-- An order's total needs more digits than one price: a product may cost up to 9,999,999,999.99
-- (products.price is numeric(12,2)), and two of it already came to more than orders.total's
-- numeric(12,2) could hold. The order's write failed, the message was retried and then
-- dead-lettered, and the customer got no reply. 20 lines of up to 99 each fit in 16 digits.
--
-- A wider precision at the same scale rewrites nothing: every stored value fits already, and
-- Postgres only takes the table's lock for the moment the catalog changes (the runner's
-- lock_timeout lets the workers' writes through if it must wait).
ALTER TABLE orders ALTER COLUMN total TYPE numeric(16,2);
