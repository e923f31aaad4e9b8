import { classifyPostgresError } from '../db/postgres-errors';

/** Pauses between tries of the write: about 2 s in all, well inside a message's processing. */
const PAUSES_MS = [100, 400, 1600];

/**
 * Runs the write that records what the provider answered. Lost, a send cannot be told again:
 * the next attempt finds the reply still 'sending' and can only mark it unknown, so a sent reply
 * loses its provider id (its receipts never reach it). A lost refusal costs a second call, the
 * next attempt taking the reply over (deliver-reply.ts, writeRefusal). A write the database refused for a passing reason (down, too slow, a
 * deadlock) is therefore tried again a few times before the error goes to the consumer. Each
 * such write moves the reply only from 'sending' and the message only from 'processing', so a
 * try whose commit did land changes nothing the second time.
 */
export async function writeProviderAnswer<T>(write: () => Promise<T>): Promise<T> {
  for (let attempt = 0; ; attempt += 1) {
    try {
      return await write();
    } catch (error) {
      if (attempt >= PAUSES_MS.length || classifyPostgresError(error) === null) throw error;
      await new Promise((resolve) => setTimeout(resolve, PAUSES_MS[attempt]));
    }
  }
}
