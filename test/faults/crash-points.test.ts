import { spawnSync } from 'node:child_process';
import type { Failpoint } from '../../src/failpoints';
import { printInvariants, startFaultRig, type FaultRig } from '../support/fault-run';
import { MAIN_JS, type ChildIngest } from '../support/process';
import { waitFor } from '../support/wait';

/**
 * SIGKILL at each step of the pipeline, reached with a named failpoint (WAGATE_FAILPOINT),
 * then a fresh process finishes the work; the invariants of the README's HTTP contract must hold after each.
 */
const CRASH_TEST_TIMEOUT_MS = 150_000;
const FAILPOINT_WAIT_MS = 45_000;
const MESSAGES_PER_CRASH = 3;
/** A refused start exits at config validation, long before this. */
const REFUSAL_TIMEOUT_MS = 20_000;

let rig: FaultRig;

beforeAll(async () => {
  rig = await startFaultRig();
}, 60_000);

afterAll(async () => {
  await rig?.stop();
});

function reached(child: ChildIngest, name: Failpoint): Promise<unknown> {
  return waitFor(`failpoint ${name} reached`, () => child.logs.some((entry) => entry.failpoint === name), FAILPOINT_WAIT_MS);
}

async function expectInvariants(title: string): Promise<void> {
  await rig.settle();
  const rows = await rig.invariants([]);
  printInvariants(title, rows);
  expect(rows.filter((r) => !r.ok)).toEqual([]);
  // Each sender sent one message: an order and a confirmation each, none twice.
  const accepted = rig.sent.filter((s) => s.status === 200);
  expect(accepted).toHaveLength(MESSAGES_PER_CRASH);
  const orders = await rig.db.sql`SELECT message_id FROM orders WHERE message_id = ANY(${accepted.map((s) => s.id)})`;
  expect(orders).toHaveLength(MESSAGES_PER_CRASH);
}

beforeEach(() => {
  rig.sent.length = 0;
  rig.fake.reset();
});

describe('SIGKILL at a failpoint, then recovery', () => {
  const workerPoints: Failpoint[] = ['worker.after-claim', 'worker.after-record', 'worker.before-ack'];
  it.each(workerPoints)('worker killed at %s: every message finished once, no order or confirmation twice', async (point) => {
    const held = await rig.replace('worker', { WAGATE_FAILPOINT: point });
    for (let i = 0; i < MESSAGES_PER_CRASH; i += 1) await rig.sendOne();
    await reached(held, point);
    await rig.replace('worker');
    await expectInvariants(`worker killed at ${point}`);
    // Every reply was sent once, or was mid-call at the kill and is now unknown, never resent.
    const replies = await rig.db.sql<{ status: string }[]>`
      SELECT status FROM outbound_messages WHERE inbound_message_id = ANY(${rig.sent.map((s) => s.id)})`;
    expect(replies).toHaveLength(MESSAGES_PER_CRASH);
    expect(replies.filter((r) => r.status !== 'sent' && r.status !== 'unknown')).toEqual([]);
    // Other senders' messages run beside the held one, so one of them may be mid-call at the
    // kill: the provider got it, and its reply is unknown. Never a call without a reply record.
    const sent = replies.filter((r) => r.status === 'sent').length;
    const unknown = replies.filter((r) => r.status === 'unknown').length;
    expect(rig.fake.calls().length).toBeGreaterThanOrEqual(sent);
    expect(rig.fake.calls().length).toBeLessThanOrEqual(sent + unknown);
  }, CRASH_TEST_TIMEOUT_MS);

  it('worker killed during the provider call: the held reply is not sent again, every order once', async () => {
    rig.fake.behave({ kind: 'hold' }, 1);
    await rig.sendOne();
    await rig.fake.waitForCalls(1, FAILPOINT_WAIT_MS);
    await rig.replace('worker');
    rig.fake.release();
    for (let i = 1; i < MESSAGES_PER_CRASH; i += 1) await rig.sendOne();
    await expectInvariants('worker killed during the provider call');
    const [held] = await rig.db.sql<{ status: string }[]>`
      SELECT status FROM outbound_messages WHERE inbound_message_id = ${rig.sent[0]!.id}`;
    expect(held?.status).toBe('unknown');
  }, CRASH_TEST_TIMEOUT_MS);

  it('ingest killed between commit and publish: the 200s are kept and published by the next ingest', async () => {
    const held = await rig.replace('ingest', { WAGATE_FAILPOINT: 'ingest.after-commit' });
    for (let i = 0; i < MESSAGES_PER_CRASH; i += 1) await rig.sendOne();
    await reached(held, 'ingest.after-commit');
    expect(rig.sent.every((s) => s.status === 200)).toBe(true);
    await rig.replace('ingest');
    await expectInvariants('ingest killed between commit and publish');
  }, CRASH_TEST_TIMEOUT_MS);

  it('production refuses WAGATE_FAILPOINT at start', () => {
    const run = spawnSync(process.execPath, [MAIN_JS, 'worker'], {
      env: { ...process.env, ...rig.env, NODE_ENV: 'production', WAGATE_FAILPOINT: 'worker.after-claim' },
      encoding: 'utf8',
      timeout: REFUSAL_TIMEOUT_MS,
    });
    expect(run.status).not.toBe(0);
    expect(run.status).not.toBeNull();
    expect(run.stderr).toMatch(/WAGATE_FAILPOINT: .*only when NODE_ENV is test/);
  });
});
