import type { Config } from '../config';
import { databaseFromConfig, type Sql } from '../db/client';
import { refuseSilentDatabase } from '../db/health';
import { migrate } from '../db/migrate';
import { isUndefinedTable } from '../db/postgres-errors';
import { WagateError } from '../errors';
import { storedShardCount } from '../ledger/shard-count';
import type { Logger } from '../telemetry/logger';

export interface MigrateOptions {
  /**
   * WORK_SHARDS was given (the chart's hook and the manifests' Job always give it): a count
   * other than the stored one fails the run before it migrates. Every ingest and worker refuses
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
    if (options.checkShardCount) await refuseOtherShardCount(sql, config);
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

/**
 * Before anything is migrated, so that a refused upgrade has changed nothing. The count is stored
 * from migration 008 on; before it, or on a new database, there is nothing to differ from.
 */
async function refuseOtherShardCount(sql: Sql, config: Config): Promise<void> {
  const stored = await storedShardCount(sql, config.QUEUE_PREFIX).catch((error: unknown) => {
    if (isUndefinedTable(error)) return null;
    throw error;
  });
  if (stored === null || stored === config.WORK_SHARDS) return;
  throw new WagateError('CONFIG_INVALID',
    `WORK_SHARDS is ${config.WORK_SHARDS}, but the work queues of "${config.QUEUE_PREFIX}" are sharded ${stored} ways (stored in Postgres), ` +
    `and every ingest and worker started with ${config.WORK_SHARDS} would refuse to start; nothing was migrated. To change the count, ` +
    `run wagate reshard --to ${config.WORK_SHARDS} first; if the group runs with ${stored} already, give this run WORK_SHARDS=${stored} too ` +
    '(with the manifests in k8s/, an overlay that patches wagate-config patches the migration Job\'s env as well).');
}
