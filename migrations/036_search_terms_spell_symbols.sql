-- The order parser reads "&" and "+" as "and", and "#1" as "number 1" (src/orders/parse-text*.ts),
-- so "2 mac & cheese" reaches the matcher as "mac and cheese". A product named "Mac & Cheese"
-- had only its name as written among its search terms, where "and" is no word: every such
-- order was asked about, the suggestion included. Each name or alias with such a symbol now
-- also has its spelled-out form among the terms; old pods read the longer arrays unchanged.

CREATE FUNCTION wagate_spell_symbols(term text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT AS $$
  SELECT btrim(regexp_replace(regexp_replace(regexp_replace(term, '[+&]', ' and ', 'g'), '#\s*(?=[0-9])', ' number ', 'g'), '\s+', ' ', 'g'))
$$;

CREATE OR REPLACE FUNCTION wagate_search_terms(name text, aliases text[]) RETURNS text[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT array_agg(variant ORDER BY position, spelled)
  FROM unnest(array_prepend(name, aliases)) WITH ORDINALITY AS t(term, position)
  CROSS JOIN LATERAL (VALUES (false, wagate_fold(term)), (true, wagate_spell_symbols(wagate_fold(term)))) AS v(spelled, variant)
  WHERE NOT spelled OR variant <> wagate_fold(term)
$$;

-- A stored generated column is computed when its row is written: write the rows whose terms change.
UPDATE products SET name = name WHERE array_to_string(array_prepend(name, aliases), ' ') ~ '[+&#]';
