import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { ScenarioDefinition } from '../../load-tests/lib/scenario.ts';
import { readSettings } from '../../load-tests/lib/settings.ts';
import { createHttpClient, REQUEST_TIMEOUT_MS } from '../../load-tests/runner/http.ts';
import { runScenario } from '../../load-tests/runner/run.ts';
import { backlog } from '../../load-tests/scenarios/backlog.ts';

/** The stats path the hand-made drains poll; the backlog scenario's own is computed from its settings. */
const STATS_PATH = '/api/v1/whatsapp-hardened/stats?hours=1';
const BACKLOG_ENV = { WHATSAPP_APP_SECRET: 'a', TWILIO_AUTH_TOKEN: 'b', ADMIN_TOKEN: 'admin', RATE: '2', DURATION: '1s' };
const SETTINGS = readSettings({ WHATSAPP_APP_SECRET: 'a', TWILIO_AUTH_TOKEN: 'b', BASE_URL: 'http://127.0.0.1:9' }, 'unit', { rate: 1, duration: '1s' });

/** A scenario whose iterations send nothing: only the arrival loop is under test. */
function scenario(overrides: Partial<ScenarioDefinition>): ScenarioDefinition {
  return {
    name: 'unit',
    description: 'no requests',
    load: { executor: 'constant-arrival-rate', rate: 40, durationSeconds: 0.5, preAllocatedVUs: 1, maxVUs: 1 },
    thresholds: {},
    counters: [{ name: 'iterations_started', perIteration: () => 1 }],
    plan: async () => [],
    ...overrides,
  };
}

describe('the Node runner', () => {
  it('starts iterations when they are due and drops those that find every VU busy, as k6 does', async () => {
    const slow = scenario({ plan: () => new Promise((resolve) => setTimeout(() => resolve([]), 120)) });
    const summary = await runScenario(slow, SETTINGS);
    const started = summary.counters.iterations_started!;
    // 20 due in 0.5 s; one VU, each iteration 120 ms: at most one in five can start.
    expect(started).toBeGreaterThanOrEqual(1);
    expect(started).toBeLessThanOrEqual(5);
    expect(summary.droppedIterations).toBe(20 - started);
  });

  it('numbers only the iterations it starts, as k6 does, so a dropped one leaves no gap', async () => {
    const numbers: number[] = [];
    const slow = scenario({
      plan: (iteration) => {
        numbers.push(iteration);
        return new Promise((resolve) => setTimeout(() => resolve([]), 120));
      },
    });
    const summary = await runScenario(slow, SETTINGS);
    expect(summary.droppedIterations).toBeGreaterThan(0);
    expect(numbers).toEqual(numbers.map((_, index) => index));
  });

  it('stops with the scenario error when an iteration throws, after the ones in flight', async () => {
    const broken = scenario({
      load: { executor: 'constant-arrival-rate', rate: 40, durationSeconds: 0.5, preAllocatedVUs: 5, maxVUs: 5 },
      plan: async (iteration) => {
        if (iteration === 3) throw new Error('payload builder broke');
        return [];
      },
    });
    await expect(runScenario(broken, SETTINGS)).rejects.toThrow('payload builder broke');
  });

  it('gives a request that got no answer a duration too, as k6 does, so failures cannot flatter the percentiles', async () => {
    // Port 9 refuses: every request fails without an answer.
    const refused = scenario({
      thresholds: { http_req_duration: ['p(99)<300'], http_req_failed: ['rate<0.01'] },
      plan: async (iteration) => [{ path: '/webhooks/meta', headers: {}, body: '{}', expectedStatus: 200, tags: { kind: 'meta' }, messageId: `m${iteration}` }],
    });
    const summary = await runScenario(refused, { ...SETTINGS, baseUrl: 'http://127.0.0.1:9' });
    expect(summary.requests).toBeGreaterThan(0);
    expect(summary.metrics.http_req_duration?.values.count).toBe(summary.requests);
    expect(summary.metrics.http_req_failed?.values.rate).toBe(1);
  });

  it.each([
    [429, 'its rate limit'],
    [503, 'another caller\'s stats under way in the pod'],
  ])('waits out a %d (%s) and counts the drain\'s stats polls as k6 does: in the requests, their durations and failures, not in the checks', async (busy) => {
    // A stats endpoint whose first answer is busy, then an empty backlog.
    const answers = [busy, 200];
    const stats = http.createServer((req, res) => {
      const status = req.url === STATS_PATH ? answers.shift() ?? 200 : 404;
      res.writeHead(status, { 'content-type': 'application/json', ...(status === busy ? { 'retry-after': '1' } : {}) });
      res.end(JSON.stringify(status === 200 ? { counts: { queued: 0, processing: 0 } } : { error: 'rate limited' }));
    });
    await new Promise<void>((resolve) => stats.listen(0, '127.0.0.1', resolve));
    try {
      const backlog = scenario({ drain: { timeoutSeconds: 30, statsPath: STATS_PATH }, counters: [{ name: 'backlog_messages' }, { name: 'backlog_left' }] });
      const baseUrl = `http://127.0.0.1:${(stats.address() as AddressInfo).port}`;
      const summary = await runScenario(backlog, { ...SETTINGS, baseUrl });
      expect(answers).toEqual([]);
      // One poll before the load (its busy answer, then the counts), one for the drain.
      expect(summary.metrics.http_reqs?.values.count).toBe(3);
      expect(summary.metrics.http_req_duration?.values.count).toBe(3);
      expect(summary.metrics.http_req_failed?.values).toMatchObject({ passes: 1, fails: 2 });
      expect(summary.metrics.checks?.values).toMatchObject({ passes: 0, fails: 0 });
    } finally {
      await new Promise((resolve) => stats.close(resolve));
    }
  });

  it('asks the stats endpoint before the load, so a wrong ADMIN_TOKEN stops the run before it starts', async () => {
    let polls = 0;
    const stats = http.createServer((req, res) => {
      polls += 1;
      res.writeHead(401, { 'content-type': 'application/json' }).end('{"error":"unauthorized"}');
    });
    await new Promise<void>((resolve) => stats.listen(0, '127.0.0.1', resolve));
    try {
      let iterations = 0;
      const backlog = scenario({ drain: { timeoutSeconds: 30, statsPath: STATS_PATH }, counters: [{ name: 'backlog_messages' }, { name: 'backlog_left' }], plan: async () => (iterations++, []) });
      const baseUrl = `http://127.0.0.1:${(stats.address() as AddressInfo).port}`;
      await expect(runScenario(backlog, { ...SETTINGS, baseUrl })).rejects.toThrow('the stats endpoint answered 401: is ADMIN_TOKEN the gateway\'s?');
      expect({ polls, iterations }).toEqual({ polls: 1, iterations: 0 });
    } finally {
      await new Promise((resolve) => stats.close(resolve));
    }
  });

  it('fails the backlog scenario when no backlog built (a worker still ran): a drain of nothing proves nothing', async () => {
    const backlogStatsPath = backlog.define(readSettings({ ...BACKLOG_ENV, BASE_URL: 'http://127.0.0.1:9' }, 'backlog', backlog.defaults)).drain!.statsPath;
    const stats = http.createServer((req, res) => {
      if (req.url !== backlogStatsPath) return void res.writeHead(200).end();
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ counts: { queued: 0, processing: 0 } }));
    });
    await new Promise<void>((resolve) => stats.listen(0, '127.0.0.1', resolve));
    try {
      const baseUrl = `http://127.0.0.1:${(stats.address() as AddressInfo).port}`;
      const settings = readSettings({ ...BACKLOG_ENV, BASE_URL: baseUrl }, 'backlog', backlog.defaults);
      const summary = await runScenario(backlog.define(settings), settings);
      expect(summary.counters.backlog_messages).toBe(0);
      expect(summary.verdicts.find((verdict) => verdict.metric === 'backlog_messages')).toMatchObject({ ok: false });
      expect(summary.ok).toBe(false);
    } finally {
      await new Promise((resolve) => stats.close(resolve));
    }
  });

  it('ends a drain it cannot watch with failed verdicts and its summary, as k6 does, rather than with an error', async () => {
    const backlogStatsPath = backlog.define(readSettings({ ...BACKLOG_ENV, BASE_URL: 'http://127.0.0.1:9' }, 'backlog', backlog.defaults)).drain!.statsPath;
    // The check before the load and the backlog built read 5 queued; then the endpoint fails.
    const answers = [200, 200];
    const stats = http.createServer((req, res) => {
      if (req.url !== backlogStatsPath) return void res.writeHead(200).end();
      const status = answers.shift() ?? 500;
      res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(status === 200 ? { counts: { queued: 5, processing: 0 } } : { error: 'internal' }));
    });
    await new Promise<void>((resolve) => stats.listen(0, '127.0.0.1', resolve));
    try {
      const baseUrl = `http://127.0.0.1:${(stats.address() as AddressInfo).port}`;
      const settings = readSettings({ ...BACKLOG_ENV, BASE_URL: baseUrl, DRAIN_TIMEOUT: '30' }, 'backlog', backlog.defaults);
      const lines: string[] = [];
      const summary = await runScenario(backlog.define(settings), settings, { log: (line) => lines.push(line) });
      expect(summary.counters).toMatchObject({ backlog_messages: 5, backlog_left: 1 });
      expect(summary.verdicts.find((verdict) => verdict.metric === 'backlog_left')).toMatchObject({ ok: false });
      expect(summary.ok).toBe(false);
      expect(lines).toContainEqual(expect.stringContaining('the drain could not be watched: the stats endpoint answered 500'));
    } finally {
      await new Promise((resolve) => stats.close(resolve));
    }
  });

  it('gives up a request whose answer trickles in after 10 s, as k6\'s timeout does, instead of waiting for every byte', async () => {
    const timers = new Set<NodeJS.Timeout>();
    const trickling = http.createServer((req, res) => {
      res.writeHead(200, { 'content-type': 'text/plain' });
      // A byte every half second: a socket's idle timeout never fires on it.
      const timer = setInterval(() => res.write('.'), 500);
      timers.add(timer);
      res.on('close', () => clearInterval(timer));
    });
    await new Promise<void>((resolve) => trickling.listen(0, '127.0.0.1', resolve));
    const client = createHttpClient();
    try {
      const baseUrl = `http://127.0.0.1:${(trickling.address() as AddressInfo).port}`;
      const answer = await client.send(baseUrl, { path: '/', headers: {}, body: '{}', expectedStatus: 200, tags: { kind: 'meta' }, messageId: 'm' });
      expect(answer).toEqual({ status: 0, error: `no answer within ${REQUEST_TIMEOUT_MS} ms` });
    } finally {
      client.close();
      timers.forEach(clearInterval);
      trickling.closeAllConnections();
      await new Promise((resolve) => trickling.close(resolve));
    }
  }, 30_000);
});
