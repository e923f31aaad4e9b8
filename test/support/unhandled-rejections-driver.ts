/**
 * Runs one scenario in a Node process of its own and prints, as one JSON line, how it ended and
 * every unhandled rejection the process saw, for runCountingUnhandledRejections in
 * test/support/unhandled-rejections.ts. Outside Jest on purpose: Jest hands a test file a copy
 * of `process`, and a listener added to that copy never hears the real process's rejections.
 *   tsx test/support/unhandled-rejections-driver.ts SCENARIO
 */
import { createDatabase, transaction } from '../../src/db/client';

const scenarios: Record<string, () => Promise<unknown>> = {
  /** The control: a rejection nobody handles, which the count must show. */
  async 'deliberate-rejection'() {
    void Promise.reject(new Error('deliberate'));
    return 'rejected';
  },
  /** A first query on a new one-connection pool to DATABASE_URL: whether it answered, or its error's code. */
  async 'first-query'() {
    const sql = createDatabase({
      url: process.env.DATABASE_URL!,
      maxConnections: 1,
      connectTimeoutSeconds: 3,
      statementTimeoutMs: 30_000,
      applicationName: 'wagate-lost-types',
    });
    try {
      return await sql`SELECT 1`.then(() => 'answered', (error: { code?: string }) => ({ code: error.code }));
    } finally {
      await sql.end({ timeout: 1 });
    }
  },
  /**
   * A transaction's reserved connection whose backend another session ended, asked a query once
   * the client has seen its socket close and the pool (of one) has reconnected it for a query of
   * its own: the query's error code, or that it answered (on a session without the transaction).
   */
  async 'reserved-after-terminate'() {
    const options = { url: process.env.DATABASE_URL!, maxConnections: 1, connectTimeoutSeconds: 3, statementTimeoutMs: 30_000, applicationName: 'wagate-reserved-closed' };
    const sql = createDatabase(options);
    const other = createDatabase({ ...options, maxConnections: 1 });
    try {
      return await transaction(sql, async (tx) => {
        const pid = (await tx<{ pid: number }[]>`SELECT pg_backend_pid() AS pid`)[0]!.pid;
        await other`SELECT pg_terminate_backend(${pid})`;
        // Until the server has let the backend go; then a little longer for the client to read the close.
        while ((await other`SELECT 1 FROM pg_stat_activity WHERE pid = ${pid}`).length > 0) await new Promise((resolve) => setTimeout(resolve, 20));
        await new Promise((resolve) => setTimeout(resolve, 200));
        await sql`SELECT 1`;
        return tx`SELECT 1`.then(() => 'answered', (error: { code?: string }) => ({ code: error.code }));
      }, 'rollback');
    } finally {
      await sql.end({ timeout: 1 });
      await other.end({ timeout: 1 });
    }
  },
};

const unhandled: string[] = [];
// Counting them also keeps them from ending the process, so the report still gets printed.
process.on('unhandledRejection', (reason) => unhandled.push(reason instanceof Error ? `${reason.name}: ${reason.message}` : String(reason)));

const scenario = scenarios[process.argv[2] ?? ''];
if (!scenario) {
  process.stderr.write(`unknown scenario ${process.argv[2]}; one of ${Object.keys(scenarios).join(', ')}\n`);
  process.exit(2);
}
let outcome: unknown = 'unfinished';
scenario().then(
  (value) => (outcome = value),
  (error: Error) => (outcome = { threw: error.message }),
);
// Printed once the process has nothing left to run, so a rejection from a late callback (a
// socket's close after its error, a pool's reconnect) is counted as well.
process.once('beforeExit', () => process.stdout.write(`${JSON.stringify({ outcome, unhandled })}\n`));
