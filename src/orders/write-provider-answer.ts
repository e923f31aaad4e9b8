import { classifyPostgresError, isStatementOverLimit } from '../db/postgres-errors';

/** Pauses between tries of the write: about 2 s in all, well inside a message's processing. */
const PAUSES_MS = [100, 400, 1600];
/**
 * How long the write goes on waiting for a Postgres that cannot be reached (a restart, a
 * failover takes 5 to 60 s), a try a second: given up sooner, a reply the provider took ends
 * `unknown` on the next attempt, its provider id and receipts lost.
 */
const OUTAGE_PATIENCE_MS = 30_000;
const OUTAGE_PAUSE_MS = 1000;

/**
 * Runs the write that records what the provider answered. Lost, a send cannot be told again:
 * the next attempt finds the reply still 'sending' and can only mark it unknown, so a sent reply
 * loses its provider id (its receipts never reach it). A lost refusal costs a second call, the
 * next attempt taking the reply over (deliver-reply.ts, writeRefusal). A write the database refused for a passing reason (down, too slow, a
 * deadlock) is therefore tried again a few times before the error goes to the consumer, and
 * for as long as OUTAGE_PATIENCE_MS while Postgres cannot be reached at all. Each
 * such write moves the reply only from 'sending' and the message only from 'processing', so a
 * try whose commit did land changes nothing the second time.
 */
export async function writeProviderAnswer<T>(write: () => Promise<T>): Promise<T> {
  const patienceEndsAt = Date.now() + OUTAGE_PATIENCE_MS;
  for (let attempt = 0; ; attempt += 1) {
    try {
      return await write();
    } catch (error) {
      const kind = classifyPostgresError(error);
      if (kind === null) throw error;
      if (attempt < PAUSES_MS.length) await pause(PAUSES_MS[attempt]!);
      else if (isOutage(kind, error) && Date.now() < patienceEndsAt) await pause(OUTAGE_PAUSE_MS);
      else throw error;
    }
  }
}

/**
 * A Postgres that cannot be reached, and may come back. Not the worker's own pool closed (it
 * is stopping): Postgres will not come back to it. Nor a statement past its own limit (53400):
 * waiting does not shrink it.
 */
function isOutage(kind: ReturnType<typeof classifyPostgresError>, error: unknown): boolean {
  return kind === 'DATABASE_UNAVAILABLE' && (error as { code?: unknown }).code !== 'CONNECTION_ENDED' && !isStatementOverLimit(error);
}

function pause(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
