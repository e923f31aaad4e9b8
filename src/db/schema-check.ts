import { setTimeout as delay } from 'node:timers/promises';
import type { Sql } from './client';
import { readMigrations, type Migration } from './migrate';
import { describeServer, isUndefinedTable } from './postgres-errors';
import { WagateError } from '../errors';

/**
 * How long a starting process waits for migrations it needs. Long enough for a migrate Job
 * applied beside the Deployments (`kubectl apply` runs no hooks) to finish a usual release;
 * shorter than the chart's liveness probes allow (3 failures 10 s apart), so the process
 * exits with its own message rather than being killed without one.
 */
export const SCHEMA_WAIT_MS = 20_000;
const SCHEMA_POLL_MS = 1000;

/**
 * The names of the migrations this release ships that the database has not applied, or
 * null when Postgres cannot be asked (a login or an outage is for the start's own checks).
 * Migrations applied beyond the release's own are fine: expand/contract keeps a release
 * working on the next one's schema (a rollback, or old pods during an upgrade).
 */
export async function missingMigrations(sql: Sql, shipped: Migration[] = readMigrations()): Promise<string[] | null> {
  try {
    const rows = await sql<{ version: number }[]>`SELECT version FROM schema_migrations`;
    const applied = new Set(rows.map((row) => Number(row.version)));
    return shipped.filter((migration) => !applied.has(migration.version)).map((migration) => migration.name);
  } catch (error) {
    if (isUndefinedTable(error)) return shipped.map((migration) => migration.name);
    return null;
  }
}

export interface SchemaWait {
  databaseUrl: string;
  /** Told once, when the process starts waiting. */
  onWaiting(missing: string[]): void;
  timeoutMs?: number;
  shipped?: Migration[];
  /** Ends the wait at once, by throwing its reason (a stop requested during start-up). */
  stop?: AbortSignal;
}

/**
 * Holds a starting ingest, worker or autoscaler until the database has every migration its
 * code uses. Started on an older schema (migrations skipped, `helm upgrade --no-hooks`, a
 * kustomize apply whose Job has not finished), an ingest would report ready and answer 503
 * to every webhook, and a worker would start without its tables.
 */
export async function waitForSchema(sql: Sql, options: SchemaWait): Promise<void> {
  const deadline = Date.now() + (options.timeoutMs ?? SCHEMA_WAIT_MS);
  let told = false;
  for (;;) {
    options.stop?.throwIfAborted();
    const missing = await missingMigrations(sql, options.shipped);
    if (missing === null || missing.length === 0) return;
    if (!told) options.onWaiting(missing);
    told = true;
    if (Date.now() >= deadline) throw schemaBehind(missing, options.databaseUrl);
    await delay(SCHEMA_POLL_MS, undefined, { signal: options.stop }).catch(() => options.stop!.throwIfAborted());
  }
}

function schemaBehind(missing: string[], databaseUrl: string): WagateError {
  const listed = missing.length > 3 ? `${missing.slice(0, 3).join(', ')} and ${missing.length - 3} more` : missing.join(', ');
  return new WagateError(
    'SCHEMA_BEHIND',
    `the database ${describeServer(databaseUrl)} lacks ${missing.length} migration(s) this release needs (${listed}): ` +
      'run `wagate migrate` with this release first (the Helm chart\'s pre-install/pre-upgrade hook does; ' +
      'with kubectl apply, apply the migrate Job and wait for it to complete)',
  );
}
