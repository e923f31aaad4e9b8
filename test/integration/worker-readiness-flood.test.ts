import type { RunningWorker } from '../../src/commands/worker';
import { startPipeline, type Pipeline } from '../support/pipeline';
import { waitFor } from '../support/wait';

/**
 * The worker's /readyz is on its metrics port, which any peer reaches unless the chart's
 * networkPolicy.metricsFrom says otherwise: a client looping on it must not turn into as many
 * queries on the Postgres the workers record orders in. Postgres itself counts the questions:
 * the worker's database resolves pg_is_in_recovery() to a function of its own that counts each
 * call before asking the real one.
 */
let pipeline: Pipeline;
let worker: RunningWorker;

beforeAll(async () => {
  pipeline = await startPipeline();
  const { sql } = pipeline.db;
  await sql`CREATE SEQUENCE readiness_asked`;
  await sql`CREATE FUNCTION public.pg_is_in_recovery() RETURNS boolean LANGUAGE sql VOLATILE
    AS $$ SELECT nextval('public.readiness_asked') < 0 OR pg_catalog.pg_is_in_recovery() $$`;
  // For connections opened from now on, the worker's pool among them.
  await sql.unsafe(`ALTER DATABASE ${pipeline.db.name} SET search_path = public, pg_catalog`);
  worker = await pipeline.startWorker();
}, 60_000);

afterAll(async () => {
  await pipeline?.stop();
});

const asked = async () => Number((await pipeline.db.sql<{ asked: string }[]>`
  SELECT CASE WHEN is_called THEN last_value ELSE 0 END AS asked FROM readiness_asked`)[0]!.asked);
const readyz = async () => {
  const answer = await fetch(`http://127.0.0.1:${worker.metricsPort}/readyz`);
  return { status: answer.status, body: await answer.json() as { postgres: string } };
};

it('asks Postgres once for a flood of /readyz requests on the metrics port, and again once its answer is a second old', async () => {
  // The counter counts this worker's questions: its readiness asked at least once already.
  await waitFor('the worker to ask its readiness through the counter', async () => (await readyz()).status === 200 && (await asked()) > 0);
  const before = await asked();
  const started = performance.now();
  const answers = await Promise.all(Array.from({ length: 1000 }, readyz));
  expect(answers.every((answer) => answer.status === 200 && answer.body.postgres === 'ok')).toBe(true);
  // Once at a time and at most once a second, however slow this machine was.
  const seconds = Math.floor((performance.now() - started) / 1000);
  expect((await asked()) - before).toBeLessThanOrEqual(seconds + 1);

  // The answer is not kept for good: a later probe asks again.
  const later = await asked();
  await waitFor('a fresh question to Postgres', async () => (await readyz()).status === 200 && (await asked()) > later);
});
