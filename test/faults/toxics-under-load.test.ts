import { printInvariants, startFaultRig, type FaultRig, type PostgresFaultWindow } from '../support/fault-run';
import type { ToxicProxy, Toxic } from '../support/toxiproxy';

/**
 * Load through a real gateway and worker (child processes) while Toxiproxy hurts their
 * connections to Postgres and RabbitMQ; after each run the faults end and the invariants of
 * SPEC §3 are checked and printed. FAULT_LOAD_SCALE multiplies the messages per run.
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
  toxic: Toxic;
}

/**
 * Runs the load with the toxics in place for its whole length, removes them, waits for the
 * backlog to drain, then checks the invariants. Toxics on Postgres open a window in which 503s
 * are allowed when `postgresMayFail`; elsewhere a 503 fails the run.
 */
async function runWith(title: string, injections: Injection[], postgresMayFail: boolean): Promise<void> {
  rig.sent.length = 0;
  rig.fake.reset();
  const startMs = Date.now();
  for (const { proxy, name, toxic } of injections) await proxy.addToxic(name, toxic);
  await rig.sendLoad(MESSAGES, PER_SECOND);
  for (const { proxy, name } of injections) await proxy.removeToxic(name);
  const windows: PostgresFaultWindow[] = postgresMayFail ? [{ startMs, endMs: Date.now() + AFTER_FAULT_GRACE_MS }] : [];
  await rig.settle();
  const rows = await rig.invariants(windows);
  printInvariants(`${title}: ${rig.sent.length} requests, ${rig.sent.filter((s) => s.status === 200).length} accepted`, rows);
  expect(rows.filter((r) => !r.ok)).toEqual([]);
  // The load must have been taken, or the run proves nothing about the messages.
  expect(rig.sent.filter((s) => s.status === 200).length).toBeGreaterThan(0);
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
    rig.sent.length = 0;
    rig.fake.reset();
    const startMs = Date.now();
    await Promise.all([rig.postgres.setEnabled(false), rig.rabbitmq.setEnabled(false)]);
    await rig.sendLoad(Math.round(MESSAGES / 2), PER_SECOND);
    await Promise.all([rig.postgres.setEnabled(true), rig.rabbitmq.setEnabled(true)]);
    const windows = [{ startMs, endMs: Date.now() + AFTER_FAULT_GRACE_MS }];
    await rig.sendLoad(Math.round(MESSAGES / 2), PER_SECOND);
    await rig.settle();
    const rows = await rig.invariants(windows);
    printInvariants(`full outage then recovery: ${rig.sent.length} requests`, rows);
    expect(rows.filter((r) => !r.ok)).toEqual([]);
    // During the outage Postgres is away, so those answers are 503; after it, every request is taken.
    expect(rig.sent.slice(-5).every((s) => s.status === 200)).toBe(true);
  }, RUN_TIMEOUT_MS);
});
