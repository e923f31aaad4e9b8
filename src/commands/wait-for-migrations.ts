import type { Config } from '../config';
import { closeDatabase, databaseFromConfig } from '../db/client';
import { refuseSilentDatabase } from '../db/health';
import { waitForSchema } from '../db/schema-check';
import type { Logger } from '../telemetry/logger';

/**
 * The start of every long-running role: wait until the database has this release's
 * migrations, or stop saying which are missing. A stop asked for meanwhile ends it by
 * throwing, before the role starts, even when nothing was missing. A connection of its own, closed before the
 * role opens its pool, so the role starts exactly as it would have.
 */
export async function waitForMigrations(config: Config, log: Logger, stop?: AbortSignal): Promise<void> {
  const sql = databaseFromConfig(config, 'wagate-schema-check', { maxConnections: 1 });
  try {
    await refuseSilentDatabase(sql, config.DATABASE_URL, config.DB_CONNECT_TIMEOUT_SECONDS);
    await waitForSchema(sql, {
      databaseUrl: config.DATABASE_URL,
      stop,
      onWaiting: (missing) => log.warn({ missing }, 'the database lacks migrations this release needs; waiting for `wagate migrate` to apply them'),
    });
    stop?.throwIfAborted();
  } finally {
    await closeDatabase(sql, (error) => log.warn({ err: error.message }, 'schema check connection closed with an error'));
  }
}
