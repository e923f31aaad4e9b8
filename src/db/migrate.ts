import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import type { Sql } from './client';
import { WagateError } from '../errors';

export const MIGRATIONS_DIR = path.join(__dirname, '..', '..', 'migrations');
/** Arbitrary constant shared by every wagate migrator, so concurrent runs queue behind one another. */
const MIGRATION_LOCK_KEY = 7_412_001;

export interface Migration {
  version: number;
  name: string;
  sql: string;
  checksum: string;
}

export function readMigrations(dir = MIGRATIONS_DIR): Migration[] {
  return readdirSync(dir)
    .filter((file) => /^\d+_[\w-]+\.sql$/.test(file))
    .sort()
    .map((file) => {
      const sql = readFileSync(path.join(dir, file), 'utf8');
      return {
        version: Number(file.split('_')[0]),
        name: file,
        sql,
        checksum: createHash('sha256').update(sql).digest('hex'),
      };
    });
}

/**
 * Applies pending migrations, each in its own transaction, under a session advisory lock.
 * Returns the names applied by this call; an already-migrated database yields [].
 */
export async function migrate(sql: Sql, migrations = readMigrations()): Promise<string[]> {
  const connection = await sql.reserve();
  try {
    await takeMigrationLock(connection as unknown as Sql);
    await connection`
      CREATE TABLE IF NOT EXISTS schema_migrations (
        version integer PRIMARY KEY,
        name text NOT NULL,
        checksum text NOT NULL,
        applied_at timestamptz NOT NULL DEFAULT now()
      )`;
    const applied = new Map(
      (await connection<{ version: number; checksum: string; name: string }[]>`
        SELECT version, checksum, name FROM schema_migrations`).map((row) => [row.version, row]),
    );
    const done: string[] = [];
    for (const migration of migrations) {
      const previous = applied.get(migration.version);
      if (previous) {
        if (previous.checksum !== migration.checksum) {
          throw new WagateError('MIGRATION_FAILED', `migration ${migration.name} was changed after it was applied (checksum differs); add a new migration instead`);
        }
        continue;
      }
      if (runsOutsideTransaction(migration)) {
        await connection.unsafe(migration.sql).catch((error: Error) => {
          throw new WagateError('MIGRATION_FAILED', `migration ${migration.name} failed: ${error.message}`);
        });
        await connection`INSERT INTO schema_migrations (version, name, checksum)
          VALUES (${migration.version}, ${migration.name}, ${migration.checksum})`;
      } else {
        await connection.unsafe(`BEGIN; ${migration.sql}\n; INSERT INTO schema_migrations (version, name, checksum)
          VALUES (${migration.version}, '${migration.name}', '${migration.checksum}'); COMMIT;`).catch(async (error) => {
          await connection.unsafe('ROLLBACK').catch(() => undefined);
          throw new WagateError('MIGRATION_FAILED', `migration ${migration.name} failed: ${(error as Error).message}`);
        });
      }
      done.push(migration.name);
    }
    return done;
  } finally {
    await connection`SELECT pg_advisory_unlock(${MIGRATION_LOCK_KEY})`.catch(() => undefined);
    connection.release();
  }
}

/**
 * A migration whose first line is this marker runs on its own, outside a transaction, as
 * CREATE INDEX CONCURRENTLY must. It must hold a single statement (several statements in one
 * query run as one implicit transaction).
 */
const NO_TRANSACTION_MARKER = '-- wagate: no transaction';

function runsOutsideTransaction(migration: Migration): boolean {
  return migration.sql.startsWith(NO_TRANSACTION_MARKER);
}

/**
 * Polls for the lock instead of waiting inside pg_advisory_lock: a waiting statement holds
 * a snapshot, and CREATE INDEX CONCURRENTLY in the runner that has the lock would wait for
 * that snapshot to go away, a deadlock Postgres would have to break.
 */
async function takeMigrationLock(connection: Sql): Promise<void> {
  for (;;) {
    const [row] = await connection<{ locked: boolean }[]>`SELECT pg_try_advisory_lock(${MIGRATION_LOCK_KEY}) AS locked`;
    if (row!.locked) return;
    await new Promise((resolve) => setTimeout(resolve, LOCK_POLL_MS));
  }
}

const LOCK_POLL_MS = 200;
