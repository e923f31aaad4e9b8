import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, utimesSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import postgres from 'postgres';
import { ADMIN_DATABASE_URL } from '../support/database';
import { clearLeftovers, LEFTOVER_AGE_MS } from '../support/leftovers';

/**
 * A test run stopped with Ctrl-C left its databases and control-plane folders behind, and each
 * such run added more. The next run clears those older than any run can be.
 */
const tag = randomBytes(4).toString('hex');
const databasePrefix = `wagate_leftover_${tag}_`;
const folderPrefix = `wagate-leftover-${tag}-`;
const admin = postgres(ADMIN_DATABASE_URL, { max: 1, onnotice: () => undefined });

afterAll(async () => {
  await admin.unsafe(`DROP DATABASE IF EXISTS ${databasePrefix}db WITH (FORCE)`);
  await admin.end();
});

const databaseExists = async () => (await admin`SELECT 1 FROM pg_database WHERE datname = ${`${databasePrefix}db`}`).length === 1;

it('clears databases and folders older than any run, and leaves younger ones and other names alone', async () => {
  await admin.unsafe(`CREATE DATABASE ${databasePrefix}db`);
  const folder = mkdtempSync(path.join(os.tmpdir(), folderPrefix));
  const leftovers = { databasePrefixes: [databasePrefix], folderPrefixes: [folderPrefix] };

  expect(await clearLeftovers({ ...leftovers, olderThanMs: LEFTOVER_AGE_MS })).toEqual([]);
  expect(await databaseExists()).toBe(true);
  expect(existsSync(folder)).toBe(true);

  // Older than the bound: a folder last changed a day ago, and any database at a bound of 0.
  const dayAgo = new Date(Date.now() - 24 * 60 * 60 * 1000);
  utimesSync(folder, dayAgo, dayAgo);
  const cleared = await clearLeftovers({ ...leftovers, olderThanMs: 0 });
  // A role that may not call pg_stat_file cannot tell a database's age, and leaves it be.
  const [{ mayTellAge }] = await admin<[{ mayTellAge: boolean }]>`
    SELECT has_function_privilege('pg_stat_file(text)', 'EXECUTE') AS "mayTellAge"`;
  expect(cleared.sort()).toEqual((mayTellAge ? [`${databasePrefix}db`, folder] : [folder]).sort());
  expect(await databaseExists()).toBe(!mayTellAge);
  expect(existsSync(folder)).toBe(false);
});
