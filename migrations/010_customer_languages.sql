-- The language a customer last wrote in, for replies to messages that carry none ("2 pizzas").
CREATE TABLE customer_languages (
  webhook_source text        NOT NULL,
  sender_key     text        NOT NULL,
  language       text        NOT NULL,
  updated_at     timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (webhook_source, sender_key)
);
