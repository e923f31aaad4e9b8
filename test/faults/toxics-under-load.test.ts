import { printInvariants, startFaultRig, type FaultRig, type PostgresFaultWindow } from '../support/fault-run';
import type { ToxicProxy, Toxic } from '../support/toxiproxy';
import { waitFor } from '../support/wait';

/**
 * Load through a real gateway and worker (child processes) while Toxiproxy hurts their
 * connections to Postgres and RabbitMQ; after each run the faults end and the invariants of
 * the HTTP contract are checked and printed. FAULT_LOAD_SCALE multiplies the messages per run.
 */
const SCALE = Number(process.env.FAULT_LOAD_SCALE ?? '1');
const MESSAGES = Math.round(40 * SCALE);
const PER_SECOND = 20;
/** The ledger's commit deadline is DB_STATEMENT_TIMEOUT_MS + 2 s; kept short so black holes end in 503s quickly. */
const STATEMENT_TIMEOUT_MS = 1000;
const COMMIT_DEADLINE_MS = STATEMENT_TIMEOUT_MS + 2000;
/** A 503 may still be answered this long after Postgres recovers: the deadline of a request sent just before. */
const AFTER_FAULT_GRACE_MS = COMMIT_DEADLINE_MS + 3000;
const RUN_TIMEOUT_MS = 240_000;
/** How long the gateway may take to use Postgres again once a fault ends; it is bounded, not instant. */
const RECOVERY_TIMEOUT_MS = 60_000;

async function isReady(baseUrl: string): Promise<boolean> {
  return fetch(`${baseUrl}/readyz`).then((response) => response.status === 200, () => false);
}

let rig: FaultRig;

beforeAll(async () => {
  rig = await startFaultRig({ DB_STATEMENT_TIMEOUT_MS: String(STATEMENT_TIMEOUT_MS) });
}, 60_000);

afterAll(async () => {
  await rig?.stop();
});

interface Injection {
  proxy: ToxicProxy;
  name: string;
  /** A toxic, or 'disabled': the proxy closes every connection and refuses new ones. */
  toxic: Toxic | 'disabled';
}

async function inject({ proxy, name, toxic }: Injection): Promise<void> {
  await (toxic === 'disabled' ? proxy.setEnabled(false) : proxy.addToxic(name, toxic));
}

async function remove({ proxy, name, toxic }: Injection): Promise<void> {
  await (toxic === 'disabled' ? proxy.setEnabled(true) : proxy.removeToxic(name));
}

/**
 * Sends a third of the load, injects the toxics, sends the second third, removes them, sends
 * the last third; then waits for the backlog to drain and checks the invariants. With
 * `postgresMayFail`, 503s are allowed from the injection until a commit deadline after the
 * gateway is ready again (bounded by RECOVERY_TIMEOUT_MS); elsewhere a 503 fails the run. The last third must be taken: the gateway recovers.
 */
async function runWith(title: string, injections: Injection[], postgresMayFail: boolean): Promise<void> {
  rig.sent.length = 0;
  rig.fake.reset();
  const third = Math.round(MESSAGES / 3);
  await rig.sendLoad(third, PER_SECOND);
  const startMs = Date.now();
  for (const injection of injections) await inject(injection);
  await rig.sendLoad(third, PER_SECOND);
  for (const injection of injections) await remove(injection);
  // After a fault on Postgres the fault lasts, for the gateway, until it can use Postgres
  // again: its pool reconnects on demand, which a loaded machine slows down. /readyz says when.
  if (postgresMayFail) await waitFor('the gateway to be ready after the fault', () => isReady(rig.ingest.baseUrl), RECOVERY_TIMEOUT_MS);
  const windows: PostgresFaultWindow[] = postgresMayFail ? [{ startMs, endMs: Date.now() + AFTER_FAULT_GRACE_MS }] : [];
  const last = await rig.sendLoad(third, PER_SECOND);
  await rig.settle();
  const rows = await rig.invariants(windows);
  const answered = (status: number) => rig.sent.filter((s) => s.status === status).length;
  printInvariants(`${title}: ${rig.sent.length} requests, ${answered(200)} answered 200, ${answered(503)} answered 503`, rows);
  expect(rows.filter((r) => !r.ok)).toEqual([]);
  // The gateway recovers: requests after the fault are taken again. The first ones may still
  // meet a pool connection that died in the fault, so only some and the last are required.
  expect(last.some((s) => s.status === 200)).toBe(true);
  expect(last.at(-1)!.status).toBe(200);
}

describe('faults under load, through Toxiproxy', () => {
  it('latency and jitter on Postgres and RabbitMQ: every message through, no 503', async () => {
    await runWith('latency and jitter', [
      { proxy: rig.postgres, name: 'pg-latency', toxic: { type: 'latency', attributes: { latency: 40, jitter: 30 } } },
      { proxy: rig.rabbitmq, name: 'mq-latency', toxic: { type: 'latency', attributes: { latency: 80, jitter: 60 } } },
    ], false);
    expect(rig.sent.every((s) => s.status === 200)).toBe(true);
  }, RUN_TIMEOUT_MS);

  it('a bandwidth limit on both: every message through, no 503', async () => {
    await runWith('bandwidth limit', [
      { proxy: rig.postgres, name: 'pg-bandwidth', toxic: { type: 'bandwidth', attributes: { rate: 64 } } },
      { proxy: rig.rabbitmq, name: 'mq-bandwidth', toxic: { type: 'bandwidth', attributes: { rate: 16 } } },
    ], false);
    expect(rig.sent.every((s) => s.status === 200)).toBe(true);
  }, RUN_TIMEOUT_MS);

  it('connection resets on RabbitMQ: nothing lost, no 503', async () => {
    await runWith('connection resets (RabbitMQ)', [
      { proxy: rig.rabbitmq, name: 'mq-reset', toxic: { type: 'reset_peer', attributes: { timeout: 700 } } },
    ], false);
  }, RUN_TIMEOUT_MS);

  it('connection resets on Postgres: nothing lost, 503s only meanwhile', async () => {
    await runWith('connection resets (Postgres)', [
      { proxy: rig.postgres, name: 'pg-reset', toxic: { type: 'reset_peer', attributes: { timeout: 700 } } },
    ], true);
  }, RUN_TIMEOUT_MS);

  it('a black hole (timeout) on both: nothing lost, 503s only meanwhile', async () => {
    await runWith('black hole', [
      { proxy: rig.postgres, name: 'pg-timeout', toxic: { type: 'timeout', attributes: { timeout: 0 } } },
      { proxy: rig.rabbitmq, name: 'mq-timeout', toxic: { type: 'timeout', attributes: { timeout: 0 } } },
    ], true);
  }, RUN_TIMEOUT_MS);

  it('a full outage of both, then recovery: nothing lost, 503s only meanwhile', async () => {
    await runWith('full outage then recovery', [
      { proxy: rig.postgres, name: 'outage', toxic: 'disabled' },
      { proxy: rig.rabbitmq, name: 'outage', toxic: 'disabled' },
    ], true);
  }, RUN_TIMEOUT_MS);
});
