import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { baseThresholds, type ScenarioDefinition } from '../../load-tests/lib/scenario.ts';
import { readSettings } from '../../load-tests/lib/settings.ts';
import { runScenario } from '../../load-tests/runner/run.ts';
import { backlog } from '../../load-tests/scenarios/backlog.ts';

/** The stats path the hand-made drains poll; the backlog scenario's own is computed from its settings. */
const STATS_PATH = '/api/v1/whatsapp-hardened/stats?hours=1';
const BACKLOG_ENV = { WHATSAPP_APP_SECRET: 'a', TWILIO_AUTH_TOKEN: 'b', ADMIN_TOKEN: 'admin', RATE: '2', DURATION: '1s' };
const SETTINGS = readSettings({ WHATSAPP_APP_SECRET: 'a', TWILIO_AUTH_TOKEN: 'b', BASE_URL: 'http://127.0.0.1:9' }, 'unit', { rate: 1, duration: '1s' });
const BACKLOG_STATS_PATH = backlog.define(readSettings({ ...BACKLOG_ENV, BASE_URL: 'http://127.0.0.1:9' }, 'backlog', backlog.defaults)).drain!.statsPath;

/** A backlog drain with no load before it: only the stats polls are under test. */
function drainOnly(): ScenarioDefinition {
  return {
    name: 'unit',
    description: 'a drain',
    load: { executor: 'constant-arrival-rate', rate: 40, durationSeconds: 0.5, preAllocatedVUs: 1, maxVUs: 1 },
    thresholds: {},
    counters: [{ name: 'backlog_messages' }, { name: 'backlog_left' }],
    plan: async () => [],
    drain: { timeoutSeconds: 30, statsPath: STATS_PATH },
  };
}

/** A gateway whose stats endpoint gives the answers in turn (then the last again), and 200 to anything else. */
async function statsServer(path: string, answers: { status: number; unfinished?: number; dead?: number; retryAfter?: string; error?: string }[], statsDelayMs = 0) {
  const polls: number[] = [];
  const server = http.createServer(async (req, res) => {
    if (req.url !== path) return void res.writeHead(200).end();
    const answer = answers.length > 1 ? answers.shift()! : answers[0]!;
    polls.push(answer.status);
    await new Promise((resolve) => setTimeout(resolve, statsDelayMs));
    res.writeHead(answer.status, { 'content-type': 'application/json', ...(answer.retryAfter ? { 'retry-after': answer.retryAfter } : {}) });
    res.end(JSON.stringify(answer.unfinished === undefined ? { error: answer.error ?? 'no stats' } : { counts: { queued: answer.unfinished, processing: 0, dead: answer.dead ?? 0 } }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    baseUrl: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    polls,
    close: () => new Promise((resolve) => server.close(resolve)),
  };
}

describe('the Node runner\'s backlog drain', () => {
  it.each([
    [429, 'its rate limit'],
    [503, 'another caller\'s stats under way in the pod'],
  ])('waits out a %d (%s) and counts the stats polls as k6 does: in the requests and durations, as expected answers, and not in the checks', async (busy) => {
    const stats = await statsServer(STATS_PATH, [{ status: busy, retryAfter: '1' }, { status: 200, unfinished: 0 }]);
    try {
      const summary = await runScenario(drainOnly(), { ...SETTINGS, baseUrl: stats.baseUrl });
      // One poll before the load (its busy answer, then the counts), one for the drain.
      expect(stats.polls).toEqual([busy, 200, 200]);
      expect(summary.metrics.http_reqs?.values.count).toBe(3);
      expect(summary.metrics.http_req_duration?.values.count).toBe(3);
      expect(summary.metrics.http_req_failed?.values).toMatchObject({ passes: 0, fails: 3 });
      expect(summary.metrics.checks?.values).toMatchObject({ passes: 0, fails: 0 });
    } finally {
      await stats.close();
    }
  });

  it('judges the 300 ms target on the webhooks\' answers, not on the stats polls, an admin query that may take seconds', async () => {
    const stats = await statsServer(STATS_PATH, [{ status: 200, unfinished: 0 }], 600);
    try {
      const webhooks: ScenarioDefinition = {
        ...drainOnly(),
        load: { executor: 'constant-arrival-rate', rate: 40, durationSeconds: 0.5, preAllocatedVUs: 20, maxVUs: 20 },
        thresholds: baseThresholds(SETTINGS, { slo: false }),
        plan: async (iteration) => [{ path: '/webhook', headers: {}, body: '{}', expectedStatus: 200, tags: { kind: 'meta' }, messageId: `m${iteration}` }],
      };
      const summary = await runScenario(webhooks, { ...SETTINGS, baseUrl: stats.baseUrl });
      // The two polls are in k6's http_req_duration, as k6 records them, and slow enough for its p(99).
      expect(summary.metrics.http_req_duration?.values.max).toBeGreaterThanOrEqual(600);
      expect(summary.metrics['http_req_duration{webhook:yes}']?.values.count).toBe(20);
      expect(summary.verdicts.filter((verdict) => !verdict.ok)).toEqual([]);
    } finally {
      await stats.close();
    }
  });

  it('waits out a busy stats endpoint until the drain\'s own end, counted from after onBacklogBuilt, however long that took', async () => {
    // Before the load, the backlog built, then a poll the endpoint is busy for, then drained.
    const stats = await statsServer(STATS_PATH, [{ status: 200, unfinished: 5 }, { status: 200, unfinished: 5 }, { status: 503, retryAfter: '1' }, { status: 200, unfinished: 0 }]);
    try {
      const drain = { ...drainOnly(), drain: { timeoutSeconds: 7, statsPath: STATS_PATH } };
      // Starting the worker takes 4 s: the first drain poll, 5 s later, meets the busy endpoint 9 s after the backlog was read.
      const summary = await runScenario(drain, { ...SETTINGS, baseUrl: stats.baseUrl }, { onBacklogBuilt: () => new Promise((resolve) => setTimeout(resolve, 4000)) });
      expect(stats.polls).toEqual([200, 200, 503, 200]);
      expect(summary.counters).toEqual({ backlog_messages: 5, backlog_left: 0 });
    } finally {
      await stats.close();
    }
  }, 30_000);

  it('asks the stats endpoint before the load, so a wrong ADMIN_TOKEN stops the run before it starts', async () => {
    const stats = await statsServer(STATS_PATH, [{ status: 401 }]);
    try {
      let iterations = 0;
      const drain = { ...drainOnly(), plan: async () => (iterations++, []) };
      await expect(runScenario(drain, { ...SETTINGS, baseUrl: stats.baseUrl })).rejects.toThrow('the stats endpoint answered 401: is ADMIN_TOKEN the gateway\'s?');
      expect({ polls: stats.polls, iterations }).toEqual({ polls: [401], iterations: 0 });
    } finally {
      await stats.close();
    }
  });

  it('says that nothing answered when BASE_URL reaches no gateway, not that the token is wrong', async () => {
    const stats = await statsServer(STATS_PATH, []);
    const baseUrl = stats.baseUrl;
    await stats.close();
    await expect(runScenario(drainOnly(), { ...SETTINGS, baseUrl })).rejects.toThrow(`no answer from the stats endpoint at ${baseUrl}`);
  });

  it('fails the backlog scenario when no backlog built (a worker still ran): a drain of nothing proves nothing', async () => {
    const stats = await statsServer(BACKLOG_STATS_PATH, [{ status: 200, unfinished: 0 }]);
    try {
      const settings = readSettings({ ...BACKLOG_ENV, BASE_URL: stats.baseUrl }, 'backlog', backlog.defaults);
      const summary = await runScenario(backlog.define(settings), settings);
      expect(summary.counters).toEqual({ backlog_messages: 0, backlog_left: 0, backlog_dead: 0 });
      expect(summary.verdicts.filter((verdict) => !verdict.ok).map((verdict) => verdict.metric)).toEqual(['backlog_messages']);
    } finally {
      await stats.close();
    }
  });

  it('fails the backlog scenario when the queues emptied because the worker dead-lettered what it took, not because it processed it', async () => {
    // Before the load, the backlog built (2 dead from an earlier run in the window), then nothing left but 5 more dead.
    const stats = await statsServer(BACKLOG_STATS_PATH, [{ status: 200, unfinished: 0, dead: 2 }, { status: 200, unfinished: 5, dead: 2 }, { status: 200, unfinished: 0, dead: 7 }]);
    try {
      const settings = readSettings({ ...BACKLOG_ENV, BASE_URL: stats.baseUrl }, 'backlog', backlog.defaults);
      const summary = await runScenario(backlog.define(settings), settings);
      expect(summary.counters).toEqual({ backlog_messages: 5, backlog_left: 0, backlog_dead: 5 });
      expect(summary.verdicts.filter((verdict) => !verdict.ok).map((verdict) => verdict.metric)).toEqual(['backlog_dead']);
    } finally {
      await stats.close();
    }
  }, 30_000);

  it('stops at a 503 that names the statement timeout, instead of asking for the same slow window until the drain times out', async () => {
    const timedOut = 'stats over 2 hours took longer than the database\'s statement timeout (DB_STATEMENT_TIMEOUT_MS); ask for fewer hours';
    const stats = await statsServer(STATS_PATH, [{ status: 503, error: timedOut }]);
    try {
      await expect(runScenario(drainOnly(), { ...SETTINGS, baseUrl: stats.baseUrl })).rejects.toThrow(
        `the stats endpoint at ${stats.baseUrl}${STATS_PATH} answered that reading that many hours took longer than the gateway's DB_STATEMENT_TIMEOUT_MS`,
      );
      expect(stats.polls).toEqual([503]);
    } finally {
      await stats.close();
    }
  });

  it('stops waiting for the drain when the run is interrupted, and fails both backlog thresholds', async () => {
    const stats = await statsServer(BACKLOG_STATS_PATH, [{ status: 200, unfinished: 5 }]);
    try {
      const settings = readSettings({ ...BACKLOG_ENV, BASE_URL: stats.baseUrl, DRAIN_TIMEOUT: '600' }, 'backlog', backlog.defaults);
      const stop = new AbortController();
      const lines: string[] = [];
      const summary = await runScenario(backlog.define(settings), settings, { log: (line) => lines.push(line), onBacklogBuilt: () => stop.abort('SIGTERM') }, stop.signal);
      expect(stats.polls).toEqual([200, 200]);
      expect(summary).toMatchObject({ interrupted: 'SIGTERM', counters: { backlog_messages: 0, backlog_left: 5 }, ok: false });
      expect(lines).toContainEqual('the drain could not be watched: the run was interrupted');
    } finally {
      await stats.close();
    }
  });
});
