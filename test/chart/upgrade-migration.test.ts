import { spawn } from 'node:child_process';
import path from 'node:path';
import { migrate, readMigrations } from '../../src/db/migrate';
import { deleteTopology } from '../support/amqp';
import { createTestDatabase, type TestDatabase } from '../support/database';
import { startTestIngest, type TestIngest } from '../support/ingest';
import { waitFor } from '../support/wait';
import { postMetaText, uniqueWamid } from '../support/webhooks';
import { ROOT } from './helm';

/** Requests in flight at once: enough to keep ingest committing throughout the migration. */
const CONCURRENCY = 8;
/** Answers to see before and after the migration, so both sides of it are under load. */
const ANSWERS_AROUND_MIGRATION = 100;

/**
 * An upgrade runs the pre-upgrade hook (`wagate migrate`) while the old pods still serve.
 * Migrations follow the expand/contract rule (docs/operations.md), so the old ingest must keep
 * answering every webhook 200 while the newest migration is applied under it.
 */
describe('the migration hook during an upgrade', () => {
  let db: TestDatabase;
  let ingest: TestIngest;
  const migrations = readMigrations();
  const newest = migrations.at(-1)!;

  beforeAll(async () => {
    db = await createTestDatabase({ migrate: false });
    await migrate(db.sql, migrations.slice(0, -1));
    ingest = await startTestIngest(db.url);
    await ingest.broker.waitUntilConnected(10000);
  });

  afterAll(async () => {
    await ingest?.stop();
    await deleteTopology(ingest.topology);
    await db?.drop();
  });

  it('keeps ingest answering 200, with no failed request, while `wagate migrate` applies the newest migration', async () => {
    const answers: { id: string; status: number | string }[] = [];
    let loading = true;
    const client = async () => {
      while (loading) {
        const id = uniqueWamid();
        const status = await postMetaText(ingest.baseUrl, { id, from: `1555${Math.floor(Math.random() * 1e7)}` }).then((reply) => reply.status, (error: Error) => error.message);
        answers.push({ id, status });
      }
    };
    const clients = Array.from({ length: CONCURRENCY }, client);
    await waitFor('load before the migration', () => (answers.length >= ANSWERS_AROUND_MIGRATION ? true : undefined), 60_000);

    const migrator = spawn(process.execPath, [path.join(ROOT, 'dist', 'main.js'), 'migrate'], {
      env: { ...process.env, NODE_ENV: 'production', LOG_LEVEL: 'info', DATABASE_URL: db.url },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    migrator.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
    migrator.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const code = await new Promise<number | null>((resolve) => migrator.once('exit', resolve));
    expect([code, output]).toEqual([0, expect.stringContaining(newest.name)]);
    const answeredAtMigration = answers.length;
    await waitFor('load after the migration', () => (answers.length >= answeredAtMigration + ANSWERS_AROUND_MIGRATION ? true : undefined), 60_000);
    loading = false;
    await Promise.all(clients);

    expect(answers.filter((answer) => answer.status !== 200)).toEqual([]);
    const [appliedRow] = await db.sql<{ applied: number }[]>`SELECT max(version)::int AS applied FROM schema_migrations`;
    expect(appliedRow?.applied).toBe(newest.version);
    const [recordedRow] = await db.sql<{ recorded: number }[]>`SELECT count(*)::int AS recorded FROM webhook_messages WHERE message_id = ANY(${answers.map((a) => a.id)})`;
    expect(recordedRow?.recorded).toBe(answers.length);
  }, 180_000);
});
