-- Whether a message still waits for a worker, as a function that the planner cannot see into
-- (PL/pgSQL is never inlined). The partial index of unfinished messages (014) is built on it,
-- so that only the queries that name it (the backlog and stuck counts) can use that index.
-- Built on the plain condition, it was offered to every statement that filtered on it, the
-- worker's claims and writes among them: once statistics taken while the queues were nearly
-- empty put the unfinished rows at a few dozen, each batch of 32 messages read every
-- unfinished row instead of 32 through the unique key, and a backlog of 8,000 made each
-- claim cost 50 ms instead of 2. Its cost grew with the very backlog it was draining.
CREATE FUNCTION wagate_unfinished(status text) RETURNS boolean
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
BEGIN
  RETURN status IN ('queued', 'processing');
END
$$;
