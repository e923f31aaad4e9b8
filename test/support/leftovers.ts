import { readdirSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import postgres from 'postgres';
import { ADMIN_DATABASE_URL } from './database';

/** What a run that was interrupted leaves behind; anything this old belongs to no run still going. */
export const LEFTOVER_AGE_MS = 6 * 60 * 60 * 1000;

export interface Leftovers {
  /** Databases whose names start so (test files' and bench runs'). */
  databasePrefixes: string[];
  /** Folders under the system's temporary folder whose names start so (the control planes'). */
  folderPrefixes: string[];
  olderThanMs: number;
}

/**
 * Drops the databases and removes the folders that interrupted test and bench runs left behind
 * (a run stopped with Ctrl-C drops nothing), once they are older than any run. A database's
 * age is read from its PG_VERSION file with pg_stat_file, which a superuser may call and other
 * roles only when granted EXECUTE on it: without, databases are left be. Returns the names it
 * cleared. Nothing here fails the run: what cannot be cleared (another user's folder, one
 * another run removes meanwhile) stays.
 */
export async function clearLeftovers(leftovers: Leftovers): Promise<string[]> {
  const cleared: string[] = [];
  const admin = postgres(ADMIN_DATABASE_URL, { max: 1, onnotice: () => undefined });
  try {
    const stale = await admin<{ datname: string }[]>`
      SELECT datname FROM pg_database
      WHERE datname LIKE ANY(${leftovers.databasePrefixes.map((prefix) => `${prefix.replace(/[\\_%]/g, '\\$&')}%`)}::text[])
        AND (pg_stat_file('base/' || oid || '/PG_VERSION')).modification < now() - make_interval(secs => ${leftovers.olderThanMs / 1000})`;
    for (const { datname } of stale) {
      const dropped = await admin.unsafe(`DROP DATABASE IF EXISTS "${datname.replace(/"/g, '""')}" WITH (FORCE)`).then(() => true, () => false);
      if (dropped) cleared.push(datname);
    }
  } catch {
    // Postgres away, or no right to call pg_stat_file: nothing is dropped.
  } finally {
    await admin.end();
  }
  const tmp = os.tmpdir();
  for (const entry of readdirSync(tmp)) {
    if (!leftovers.folderPrefixes.some((prefix) => entry.startsWith(prefix))) continue;
    const folder = path.join(tmp, entry);
    try {
      if (Date.now() - statSync(folder).mtimeMs <= leftovers.olderThanMs) continue;
      rmSync(folder, { recursive: true, force: true });
      cleared.push(folder);
    } catch {
      // Gone meanwhile, or not ours to remove.
    }
  }
  return cleared;
}

/** jest's globalSetup: clears what earlier interrupted runs left. */
export default async function clearEarlierLeftovers(): Promise<void> {
  const cleared = await clearLeftovers({ databasePrefixes: ['wagate_test_', 'wagate_bench_'], folderPrefixes: ['wagate-kube-'], olderThanMs: LEFTOVER_AGE_MS });
  if (cleared.length > 0) console.log(`cleared what interrupted runs left behind: ${cleared.join(', ')}`);
}
