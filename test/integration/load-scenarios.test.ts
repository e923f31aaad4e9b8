import { backlog } from '../../load-tests/scenarios/backlog.ts';
import { duplicateStorm } from '../../load-tests/scenarios/duplicate-storm.ts';
import { forgedSignatures } from '../../load-tests/scenarios/forged-signatures.ts';
import { metaConstant } from '../../load-tests/scenarios/meta-constant.ts';
import { mixedRamping } from '../../load-tests/scenarios/mixed-ramping.ts';
import { floodSender, senderFlood } from '../../load-tests/scenarios/sender-flood.ts';
import { soak } from '../../load-tests/scenarios/soak.ts';
import { twilioConstant } from '../../load-tests/scenarios/twilio-constant.ts';
import { idsAnswered, rowsFor, runBriefly, type RunResult } from '../support/load';
import { startPipeline, type Pipeline } from '../support/pipeline';
import { waitFor } from '../support/wait';

/** Low, so the flooding sender crosses it within a one-second run. */
const RATE_LIMIT = 10;
const RUN_TIMEOUT_MS = 60_000;

function expectEveryThresholdPassed(result: RunResult): void {
  const failed = result.summary.verdicts.filter((verdict) => !verdict.ok);
  expect(failed).toEqual([]);
  expect(result.summary.ok).toBe(true);
  expect(result.summary.requests).toBeGreaterThan(0);
  expect(result.summary.droppedIterations).toBe(0);
}

describe('load scenarios, run briefly by the Node runner against a real gateway', () => {
  let pipeline: Pipeline;
  const acknowledged: string[] = [];
  /** The flooder's messages past the limit: the only ones any scenario may leave rate_limited. */
  const floodedPastLimit = new Set<string>();

  beforeAll(async () => {
    pipeline = await startPipeline({ RATE_LIMIT_MAX_REQUESTS: String(RATE_LIMIT) });
  });
  afterAll(async () => {
    await pipeline?.stop();
  });

  async function expectEvery200Recorded(result: RunResult) {
    const ids = idsAnswered(result, 200);
    expect(ids.length).toBeGreaterThan(0);
    const rows = await rowsFor(pipeline.db.sql, ids);
    expect(ids.filter((id) => !rows.has(id))).toEqual([]);
    acknowledged.push(...ids);
    return rows;
  }

  it('forged signatures: every forgery is refused with 401, each control accepted, and none leaves a message', async () => {
    const malformedBefore = await pipeline.db.sql`SELECT count(*)::integer AS n FROM webhook_messages WHERE status = 'malformed'`;
    const result = await runBriefly(forgedSignatures, pipeline.ingest.baseUrl);
    expectEveryThresholdPassed(result);
    expect(result.summary.counters.forged_accepted).toBe(0);
    const forged = result.answers.filter((answer) => answer.kind.startsWith('forged-'));
    const controls = result.answers.filter((answer) => answer.kind.startsWith('control-'));
    expect(forged.every((answer) => answer.status === 401)).toBe(true);
    expect(controls.every((answer) => answer.status === 200)).toBe(true);
    expect([new Set(forged.map((answer) => answer.kind)).size, new Set(controls.map((answer) => answer.kind)).size]).toEqual([8, 2]);
    expect(result.summary.checks.map((check) => check.name).sort()).toEqual([...new Set(result.answers.map((answer) => `${answer.kind} answered ${answer.kind.startsWith('forged-') ? 401 : 200}`))].sort());
    expect(result.summary.checks.every((check) => check.passes > 0 && check.fails === 0)).toBe(true);
    expect((await rowsFor(pipeline.db.sql, result.answers.map((answer) => answer.messageId))).size).toBe(0);
    // Nor any row under another key: a control's body kept as malformed would be one.
    expect(await pipeline.db.sql`SELECT count(*)::integer AS n FROM webhook_messages WHERE status = 'malformed'`).toEqual(malformedBefore);
  }, RUN_TIMEOUT_MS);

  it('forged signatures: fails, rather than passing for the wrong reason, when it signs for another URL than the gateway\'s', async () => {
    // Every Twilio request, the forgeries included, is then refused for its URL: only the control shows it.
    const result = await runBriefly(forgedSignatures, pipeline.ingest.baseUrl, { PUBLIC_BASE_URL: 'https://not-the-gateway.example.com' });
    expect(result.summary.ok).toBe(false);
    expect(result.summary.verdicts.filter((verdict) => !verdict.ok).map((verdict) => verdict.metric).sort()).toEqual(['checks', 'http_req_failed']);
    expect(result.summary.checks.find((check) => check.name === 'control-twilio answered 200')).toMatchObject({ passes: 0 });
  }, RUN_TIMEOUT_MS);

  it('backlog: acks while no worker runs, then the backlog drains once one starts', async () => {
    const result = await runBriefly(backlog, pipeline.ingest.baseUrl, { DRAIN_TIMEOUT: '45' }, {
      onBacklogBuilt: async () => {
        await pipeline.startWorker();
      },
    });
    expectEveryThresholdPassed(result);
    const rows = await expectEvery200Recorded(result);
    expect(result.summary.counters.backlog_messages).toBeGreaterThanOrEqual(rows.size);
    expect(result.summary.counters.backlog_left).toBe(0);
    expect(result.summary.metrics.backlog_drain_seconds?.values.count).toBe(1);
    const finished = await rowsFor(pipeline.db.sql, [...rows.keys()]);
    expect([...finished.values()].filter((row) => !['processed', 'unmatched'].includes(row.status))).toEqual([]);
  }, RUN_TIMEOUT_MS);

  it('backlog: fails the run when a worker is still running, since no backlog builds', async () => {
    // After the test above, a worker runs; a slow rate leaves it nothing to fall behind on.
    const result = await runBriefly(backlog, pipeline.ingest.baseUrl, { RATE: '10', DURATION: '2s', DRAIN_TIMEOUT: '45' });
    await expectEvery200Recorded(result);
    expect(result.summary.ok).toBe(false);
    expect(result.summary.verdicts.filter((verdict) => !verdict.ok)).toEqual([expect.objectContaining({ metric: 'backlog_messages', threshold: 'count>=10' })]);
  }, RUN_TIMEOUT_MS);

  it.each([
    ['meta-constant', metaConstant, {}],
    ['twilio-constant', twilioConstant, {}],
    ['soak', soak, { RATE: '25' }],
  ])('%s: every threshold passes and every 200 has its row', async (_name, scenario, overrides) => {
    const result = await runBriefly(scenario, pipeline.ingest.baseUrl, overrides);
    expectEveryThresholdPassed(result);
    const rows = await expectEvery200Recorded(result);
    expect(idsAnswered(result, 200).length).toBe(result.answers.length);
    expect([...rows.values()].every((row) => row.duplicate_count === 0)).toBe(true);
  }, RUN_TIMEOUT_MS);

  it('mixed-ramping: ramps up and down, sends both providers in the configured share, and every 200 has its row', async () => {
    const result = await runBriefly(mixedRamping, pipeline.ingest.baseUrl, { DURATION: '2s', META_SHARE: '0.25' });
    expectEveryThresholdPassed(result);
    const rows = await expectEvery200Recorded(result);
    const meta = [...rows.values()].filter((row) => row.webhook_source === 'whatsapp').length;
    expect(meta).toBe(Math.floor(rows.size * 0.25));
  }, RUN_TIMEOUT_MS);

  it('duplicate storm: each id has exactly one row, and every other copy is counted as its duplicate', async () => {
    const result = await runBriefly(duplicateStorm, pipeline.ingest.baseUrl, { RATE: '20' });
    expectEveryThresholdPassed(result);
    const rows = await expectEvery200Recorded(result);
    const { storm_ids: stormIds, duplicate_copies: duplicateCopies } = result.summary.counters;
    expect(rows.size).toBe(stormIds);
    for (const [id, row] of rows) {
      const copies = result.answers.filter((answer) => answer.messageId === id).length;
      expect(row.duplicate_count).toBe(copies - 1);
    }
    const counted = [...rows.values()].reduce((sum, row) => sum + row.duplicate_count, 0);
    expect(counted).toBe(duplicateCopies);
    expect(duplicateCopies).toBeGreaterThan(stormIds!);
  }, RUN_TIMEOUT_MS);

  it('sender flood: the flooder is rate-limited past the limit, the other senders are not, and all are answered 200', async () => {
    const result = await runBriefly(senderFlood, pipeline.ingest.baseUrl);
    expectEveryThresholdPassed(result);
    expect(result.summary.verdicts.map((verdict) => verdict.metric)).toContain('http_req_duration{sender:flood}');
    const recorded = await expectEvery200Recorded(result);
    const rows = [...recorded.values()];
    const flooder = floodSender(result.summary.runId, 1000);
    for (const [id, row] of recorded) if (row.phone_number === flooder && row.status === 'rate_limited') floodedPastLimit.add(id);
    const flood = rows.filter((row) => row.phone_number === flooder);
    expect(flood.length).toBe(result.summary.counters.flood_messages);
    expect(flood.filter((row) => row.status === 'rate_limited').length).toBe(flood.length - RATE_LIMIT);
    expect(rows.filter((row) => row.phone_number !== flooder && row.status === 'rate_limited')).toEqual([]);
  }, RUN_TIMEOUT_MS);

  it('with a worker running, every queued message ends processed or unmatched', async () => {
    const statuses = async () =>
      pipeline.db.sql<{ status: string; count: number }[]>`
        SELECT status, count(*)::integer AS count FROM webhook_messages WHERE message_id = ANY(${acknowledged}) GROUP BY status`;
    await waitFor('every queued message to finish', async () => (await statuses()).every((row) => ['processed', 'unmatched', 'rate_limited'].includes(row.status)), 45_000);
    const counts = Object.fromEntries((await statuses()).map((row) => [row.status, row.count]));
    expect(counts.processed).toBeGreaterThan(0);
    expect(Object.keys(counts).sort()).toEqual(expect.arrayContaining(['processed', 'rate_limited']));
    expect(Object.values(counts).reduce((sum, count) => sum + count, 0)).toBe(new Set(acknowledged).size);
    // rate_limited is no way to finish for a genuine sender's message: only the flooder's past the limit.
    const limited = await pipeline.db.sql<{ message_id: string }[]>`
      SELECT message_id FROM webhook_messages WHERE message_id = ANY(${acknowledged}) AND status = 'rate_limited'`;
    expect(limited.map((row) => row.message_id).sort()).toEqual([...floodedPastLimit].sort());
    expect(floodedPastLimit.size).toBeGreaterThan(0);
  }, RUN_TIMEOUT_MS);
});
