import type { Config } from '../config';
import { databaseFromConfig } from '../db/client';
import { refuseSilentDatabase } from '../db/health';
import { migrate } from '../db/migrate';
import { shardCountMismatch, storedShardCount } from '../ledger/shard-count';
import type { Logger } from '../telemetry/logger';

export interface MigrateOptions {
  /**
   * WORK_SHARDS was given (the chart's hook and the manifests' Job always give it): once
   * migrated, a count other than the stored one fails the run. Every ingest and worker refuses
   * to start with it, so the upgrade stops here, before any pod is replaced, rather than with
   * new pods crash-looping and old ones failing too as their containers restart.
   */
  checkShardCount?: boolean;
}

export async function runMigrate(config: Config, log: Logger, options: MigrateOptions = {}): Promise<void> {
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
    if (options.checkShardCount) {
      const stored = await storedShardCount(sql, config.QUEUE_PREFIX);
      if (stored !== null && stored !== config.WORK_SHARDS) throw shardCountMismatch(config.WORK_SHARDS, stored, config.QUEUE_PREFIX);
    }
  } finally {
    await sql.end({ timeout: 5 });
  }
}
