-- A counter that moves with every change to the catalog, in the transaction that makes it: a
-- worker keeps the catalog's names in memory and reads this one value (inside the statement
-- it runs anyway) to know whether they are still current. A statement-level trigger, so an
-- import of a thousand rows moves it once, and hand edits and deletes move it too.
CREATE TABLE catalog_version (
  only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
  version  bigint  NOT NULL
);
INSERT INTO catalog_version (version) VALUES (1);

CREATE FUNCTION wagate_bump_catalog_version() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  UPDATE catalog_version SET version = version + 1;
  RETURN NULL;
END
$$;

CREATE TRIGGER products_bump_catalog_version
  AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON products
  FOR EACH STATEMENT EXECUTE FUNCTION wagate_bump_catalog_version();
