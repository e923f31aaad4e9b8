-- The order pipeline: catalog, orders, one reply per inbound message, and delivery receipts
-- folded into the reply's furthest status.

CREATE EXTENSION IF NOT EXISTS pg_trgm;
CREATE EXTENSION IF NOT EXISTS unaccent;

-- unaccent() is only STABLE (its dictionary could change); wrapping it with the dictionary
-- named makes the folding usable in indexes.
CREATE FUNCTION wagate_fold(input text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT AS $$
  SELECT lower(public.unaccent('public.unaccent'::regdictionary, input))
$$;

CREATE FUNCTION wagate_search_terms(name text, aliases text[]) RETURNS text[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT array_agg(wagate_fold(term)) FROM unnest(array_prepend(name, aliases)) AS term
$$;

CREATE TABLE products (
  sku        text PRIMARY KEY,
  name       text          NOT NULL,
  aliases    text[]        NOT NULL DEFAULT '{}',
  price      numeric(12,2) NOT NULL CHECK (price >= 0),
  currency   char(3)       NOT NULL,
  active     boolean       NOT NULL DEFAULT true,
  -- Name and aliases folded (lower case, no accents) for trigram matching.
  search_terms text[] GENERATED ALWAYS AS (wagate_search_terms(name, aliases)) STORED,
  updated_at timestamptz   NOT NULL DEFAULT now()
);

CREATE TABLE orders (
  id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  webhook_source  text          NOT NULL,
  message_id      text          NOT NULL,
  phone_number    text          NOT NULL,
  sender_key      text          NOT NULL,
  customer_name   text,
  status          text          NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'cancelled', 'fulfilled')),
  total           numeric(12,2) NOT NULL,
  currency        char(3)       NOT NULL,
  cancelled_by_message_id text,
  created_at      timestamptz   NOT NULL DEFAULT now(),
  updated_at      timestamptz   NOT NULL DEFAULT now(),
  CONSTRAINT orders_source_message_id_key UNIQUE (webhook_source, message_id)
);
CREATE INDEX orders_sender_open_idx ON orders (webhook_source, sender_key, id DESC) WHERE status = 'open';

CREATE TABLE order_items (
  order_id   bigint        NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
  line       integer       NOT NULL,
  sku        text          NOT NULL REFERENCES products (sku),
  name       text          NOT NULL,
  quantity   integer       NOT NULL CHECK (quantity > 0),
  unit_price numeric(12,2) NOT NULL,
  PRIMARY KEY (order_id, line)
);

-- One reply per inbound message. status is our side of the send:
--   pending -> sending (marked before the provider call) -> sent | retry | failed | unknown.
-- unknown means a crash or timeout hid the outcome; it is never resent without an operator.
-- delivery_status is the furthest receipt from the provider (sent < delivered < read; failed final).
CREATE TABLE outbound_messages (
  id                  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  idempotency_key     text        NOT NULL UNIQUE,
  webhook_source      text        NOT NULL,
  inbound_message_id  text        NOT NULL,
  order_id            bigint      REFERENCES orders (id) ON DELETE SET NULL,
  recipient           text        NOT NULL,
  business_number     text        NOT NULL,
  kind                text        NOT NULL,
  body                text,
  status              text        NOT NULL DEFAULT 'pending'
                      CHECK (status IN ('pending', 'sending', 'sent', 'retry', 'failed', 'unknown')),
  attempts            integer     NOT NULL DEFAULT 0,
  provider_message_id text,
  delivery_status     text,
  last_error          text,
  created_at          timestamptz NOT NULL DEFAULT now(),
  updated_at          timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT outbound_messages_inbound_key UNIQUE (webhook_source, inbound_message_id)
);
CREATE INDEX outbound_messages_provider_id_idx ON outbound_messages (webhook_source, provider_message_id);
CREATE INDEX outbound_messages_unknown_idx ON outbound_messages (id) WHERE status = 'unknown';

ALTER TABLE webhook_messages ADD COLUMN attempts integer NOT NULL DEFAULT 0;
ALTER TABLE webhook_messages ADD COLUMN processed_at timestamptz;

-- Rank of a delivery receipt: a receipt only moves a reply forward, and failed is final.
CREATE FUNCTION wagate_receipt_rank(status text) RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT CASE status
    WHEN 'failed' THEN 100 WHEN 'undelivered' THEN 100
    WHEN 'read' THEN 3 WHEN 'delivered' THEN 2 WHEN 'sent' THEN 1
    ELSE 0 END
$$;
