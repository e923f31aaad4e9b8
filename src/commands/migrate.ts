import type { Config } from '../config';
import { createDatabase } from '../db/client';
import { migrate } from '../db/migrate';
import type { Logger } from '../telemetry/logger';

export async function runMigrate(config: Config, log: Logger): Promise<void> {
  const sql = createDatabase({
    url: config.DATABASE_URL,
    maxConnections: 1,
    connectTimeoutSeconds: config.DB_CONNECT_TIMEOUT_SECONDS,
    // DDL on a big table can take longer than a request may.
    statementTimeoutMs: 0,
    applicationName: 'wagate-migrate',
  });
  try {
    const applied = await migrate(sql);
    log.info({ applied }, applied.length > 0 ? 'migrations applied' : 'database already up to date');
  } finally {
    await sql.end({ timeout: 5 });
  }
}
