import type { Config } from '../config';
import { databaseFromConfig } from '../db/client';
import { refuseSilentDatabase } from '../db/health';
import { migrate } from '../db/migrate';
import type { Logger } from '../telemetry/logger';

export async function runMigrate(config: Config, log: Logger): Promise<void> {
  // DDL on a big table can take longer than a request may: no statement timeout.
  const sql = databaseFromConfig(config, 'wagate-migrate', { maxConnections: 1, statementTimeoutMs: 0 });
  try {
    await refuseSilentDatabase(sql, config.DATABASE_URL, config.DB_CONNECT_TIMEOUT_SECONDS);
    const applied = await migrate(sql, undefined, {
      onLockTimeout: (migration, attempt) =>
        log.warn({ migration, attempt }, 'a migration waited too long for a table lock; letting writers through, then trying again'),
      onLockHeld: (holder, waitedMs) =>
        log.warn({ holder, waitedSeconds: Math.round(waitedMs / 1000) }, holder.building
          ? `another session holds the migration lock while it builds an index concurrently (${holder.building}); waiting for it. A killed run's build finishes on its own and is recorded by this run without building again: do not end it, which would lose the build; give the Job a longer migrations.activeDeadlineSeconds and Helm a longer --timeout`
          : 'another session holds the migration lock; waiting for it. If no other wagate migrate is running, that session is left from a killed run: end it with SELECT pg_terminate_backend(<holder.pid>)'),
    });
    log.info({ applied }, applied.length > 0 ? 'migrations applied' : 'database already up to date');
  } finally {
    await sql.end({ timeout: 5 });
  }
}
