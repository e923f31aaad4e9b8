/**
 * The k6 glue's setup, teardown and handleSummary, run in jest with k6's modules stubbed as k6
 * documents them: the stats polls and the backlog counters, and the summary written from k6's
 * end-of-test data.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { createK6Script } from '../../load-tests/k6/script.ts';
import { statsBusy } from '../../load-tests/lib/backlog.ts';
import { runIdLine } from '../../load-tests/lib/ids.ts';
import type { ScenarioModule } from '../../load-tests/lib/scenario.ts';
import { readSettings } from '../../load-tests/lib/settings.ts';
import { runScenario } from '../../load-tests/runner/run.ts';
import { SCENARIOS } from '../../load-tests/scenarios/index.ts';

interface StatsAnswer {
  status: number;
  unfinished?: number;
  dead?: number;
  retryAfter?: string;
  error?: string;
}

/** What the stubbed k6 was asked and answers; its clock moves only when the script sleeps. */
const mockK6 = {
  statsAnswers: [] as StatsAnswer[],
  gets: [] as { url: string; params: Record<string, unknown> }[],
  slept: [] as number[],
  nowMs: 1_767_225_600_000,
  metrics: new Map<string, number[]>(),
};

jest.mock('k6', () => ({
  check: () => true,
  sleep: (seconds: number) => {
    mockK6.slept.push(seconds);
    mockK6.nowMs += seconds * 1000;
  },
}), { virtual: true });
jest.mock('k6/http', () => {
  const http = {
    expectedStatuses: (...statuses: unknown[]) => ({ expectedStatuses: statuses }),
    batch: () => [],
    get: (url: string, params: Record<string, unknown>) => {
      mockK6.gets.push({ url, params });
      const answer = mockK6.statsAnswers.shift() ?? { status: 599 };
      const body = answer.unfinished === undefined ? { error: answer.error ?? 'no stats' } : { counts: { queued: answer.unfinished, processing: 0, dead: answer.dead ?? 0 } };
      // k6 gives header names in Go's canonical form.
      return { status: answer.status, headers: answer.retryAfter ? { 'Retry-After': answer.retryAfter } : {}, json: () => body };
    },
  };
  return { __esModule: true, default: http, ...http };
}, { virtual: true });
jest.mock('k6/execution', () => ({ __esModule: true, default: { scenario: { iterationInTest: 0 } } }), { virtual: true });
jest.mock('k6/metrics', () => {
  class Metric {
    constructor(private readonly name: string) {
      mockK6.metrics.set(name, []);
    }
    add(value: number) {
      mockK6.metrics.get(this.name)!.push(value);
    }
  }
  return { Counter: Metric, Trend: Metric };
}, { virtual: true });

const ENV = { BASE_URL: 'http://gateway.test:3000', WHATSAPP_APP_SECRET: 'a', TWILIO_AUTH_TOKEN: 'b', ADMIN_TOKEN: 'admin', SUMMARY_PATH: 'results/run.json' };

function k6Script(scenario: ScenarioModule, env: Record<string, string> = {}) {
  (globalThis as { __ENV?: Record<string, string> }).__ENV = { ...ENV, ...env };
  return createK6Script(scenario);
}

/** The backlog counters k6's setup and teardown record when the stats endpoint answers these in turn. */
function k6BacklogCounters(answers: StatsAnswer[], env: Record<string, string> = {}) {
  const script = k6Script(SCENARIOS.backlog!, env);
  mockK6.statsAnswers = [...answers];
  const clock = jest.spyOn(Date, 'now').mockImplementation(() => mockK6.nowMs);
  try {
    script.setup();
    script.teardown();
  } finally {
    clock.mockRestore();
  }
  return { backlog_messages: mockK6.metrics.get('backlog_messages'), backlog_left: mockK6.metrics.get('backlog_left'), backlog_dead: mockK6.metrics.get('backlog_dead') };
}

let logged: jest.SpyInstance;
let errors: jest.SpyInstance;
beforeEach(() => {
  mockK6.statsAnswers = [];
  mockK6.gets = [];
  mockK6.slept = [];
  mockK6.metrics.clear();
  logged = jest.spyOn(console, 'log').mockImplementation(() => {});
  errors = jest.spyOn(console, 'error').mockImplementation(() => {});
});
afterEach(() => jest.restoreAllMocks());

describe('the k6 script\'s setup and teardown', () => {
  it('prints the run id in setup and hands it to the iterations and the summary', () => {
    expect(k6Script(SCENARIOS['meta-constant']!, { RUN_ID: '5e0c1a9b' }).setup()).toEqual({ runId: '5e0c1a9b' });
    expect(logged).toHaveBeenCalledWith(runIdLine('meta-constant', '5e0c1a9b'));
    expect(mockK6.gets).toEqual([]);
  });

  it('asks the stats endpoint before the load with the admin token, 429 and 503 expected as well as 200, and stops at a 401', () => {
    const script = k6Script(SCENARIOS.backlog!);
    mockK6.statsAnswers = [{ status: 401 }];
    expect(() => script.setup()).toThrow('the stats endpoint answered 401: is ADMIN_TOKEN the gateway\'s?');
    for (const [status, said] of [[0, 'no answer from the stats endpoint at http://gateway.test:3000'], [500, 'the stats endpoint answered 500: see the gateway\'s log']] as const) {
      mockK6.statsAnswers = [{ status }];
      expect(() => script.setup()).toThrow(said);
    }
    expect(mockK6.gets.slice(0, 1)).toEqual([
      {
        url: expect.stringMatching(/^http:\/\/gateway\.test:3000\/api\/v1\/whatsapp-hardened\/stats\?hours=\d+$/),
        params: { headers: { Authorization: 'Bearer admin' }, timeout: '10s', tags: { kind: 'stats' }, responseCallback: { expectedStatuses: [200, 429, 503] } },
      },
    ]);
  });

  it('waits in teardown until the backlog drained, polling every 5 s and waiting out a 429 as long as it says', () => {
    const counters = k6BacklogCounters([
      { status: 200, unfinished: 5 },
      { status: 200, unfinished: 5 },
      { status: 429, retryAfter: '7' },
      { status: 200, unfinished: 2 },
      { status: 200, unfinished: 0 },
    ]);
    expect(counters).toEqual({ backlog_messages: [5], backlog_left: [0], backlog_dead: [0] });
    expect(mockK6.slept).toEqual([5, 7, 5]);
    // From the last poll that saw all 5 (the one that built it) to the one that saw none.
    expect(mockK6.metrics.get('backlog_drain_seconds')).toEqual([17]);
    expect(logged).toHaveBeenCalledWith(expect.stringContaining('backlog built: 5 messages queued or processing; start a worker now'));
  });

  it('counts what is left when the wait times out, a verified backlog that did not drain', () => {
    const counters = k6BacklogCounters([{ status: 200, unfinished: 5 }, { status: 200, unfinished: 5 }, { status: 200, unfinished: 4 }], { DRAIN_TIMEOUT: '5' });
    expect(counters).toEqual({ backlog_messages: [5], backlog_left: [4], backlog_dead: [0] });
    expect(mockK6.metrics.get('backlog_drain_seconds')).toEqual([]);
  });

  it.each([
    ['the first read', [{ status: 200, unfinished: 5 }, { status: 500 }], { backlog_messages: [0], backlog_left: [1], backlog_dead: [0] }],
    ['a later read', [{ status: 200, unfinished: 5 }, { status: 200, unfinished: 5 }, { status: 500 }], { backlog_messages: [0], backlog_left: [5], backlog_dead: [0] }],
  ])('fails both backlog thresholds when %s of the drain fails, logs why, and lets the run end with its summary', (_when, answers, expected) => {
    expect(k6BacklogCounters(answers)).toEqual(expected);
    expect(errors).toHaveBeenCalledWith(expect.stringContaining('the drain could not be watched: the stats endpoint answered 500'));
  });

  it('stops at a 503 that names the statement timeout, and waits out any other 503', () => {
    const script = k6Script(SCENARIOS.backlog!);
    // The script's clock moves only when it sleeps, as k6's would in these answers' time.
    const clock = jest.spyOn(Date, 'now').mockImplementation(() => mockK6.nowMs);
    try {
      mockK6.statsAnswers = [{ status: 503, error: 'stats over 2 hours took longer than the database\'s statement timeout (DB_STATEMENT_TIMEOUT_MS); ask for fewer hours' }];
      expect(() => script.setup()).toThrow('the stats endpoint at http://gateway.test:3000/api/v1/whatsapp-hardened/stats?hours=');
      expect(mockK6.slept).toEqual([]);
      mockK6.statsAnswers = [{ status: 503, retryAfter: '1' }, { status: 503, error: 'temporarily unavailable', retryAfter: '2' }, { status: 200, unfinished: 0 }];
      script.setup();
      expect(mockK6.slept).toEqual([1, 2]);
    } finally {
      clock.mockRestore();
    }
    // Without Retry-After, an ingress's 503 or the gateway's "temporarily unavailable" is waited out too.
    expect(statsBusy(503, { error: 'temporarily unavailable' })).toBe(true);
    expect(statsBusy(503, null)).toBe(true);
    expect(statsBusy(503, { error: 'stats over 2 hours took longer than the database\'s statement timeout (DB_STATEMENT_TIMEOUT_MS); ask for fewer hours' })).toBe(false);
  });

  it('records the same backlog counters as the Node runner for the same answers', async () => {
    // The stats window slides past an earlier run's 3 dead messages, then 2 and 1 of this run's
    // die: 3 in all, where the difference between the first and the last read says 0.
    const answers: StatsAnswer[] = [
      { status: 200, unfinished: 5, dead: 4 }, { status: 200, unfinished: 5, dead: 4 }, { status: 200, unfinished: 4, dead: 1 },
      { status: 200, unfinished: 2, dead: 3 }, { status: 200, unfinished: 0, dead: 4 },
    ];
    const fromK6 = k6BacklogCounters(answers);
    expect(fromK6).toEqual({ backlog_messages: [5], backlog_left: [0], backlog_dead: [3] });
    const statsPath = SCENARIOS.backlog!.define(readSettings(ENV, 'backlog', SCENARIOS.backlog!.defaults)).drain!.statsPath;
    const queue = [...answers];
    const gateway = http.createServer((req, res) => {
      if (req.url !== statsPath) return void res.end();
      const answer = queue.shift()!;
      res.writeHead(answer.status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(answer.unfinished === undefined ? { error: 'no stats' } : { counts: { queued: answer.unfinished, processing: 0, dead: answer.dead ?? 0 } }));
    });
    await new Promise<void>((resolve) => gateway.listen(0, '127.0.0.1', resolve));
    try {
      const settings = readSettings({ ...ENV, BASE_URL: `http://127.0.0.1:${(gateway.address() as AddressInfo).port}`, RATE: '1', DURATION: '1s' }, 'backlog', SCENARIOS.backlog!.defaults);
      const fromNode = await runScenario(SCENARIOS.backlog!.define(settings), settings);
      expect(queue).toEqual([]);
      expect({ backlog_messages: [fromNode.counters.backlog_messages], backlog_left: [fromNode.counters.backlog_left], backlog_dead: [fromNode.counters.backlog_dead] }).toEqual(fromK6);
    } finally {
      await new Promise((resolve) => gateway.close(resolve));
    }
  });
});

/** k6's end-of-test data as handleSummary() receives it: metrics by name (sub-metrics too), the root group's checks, what setup returned. */
function k6SummaryData() {
  const trend = (p99: number, count: number) => ({ avg: 4, min: 1, med: 3, max: p99 + 1, 'p(90)': 6, 'p(95)': 8, 'p(99)': p99, count });
  return {
    setup_data: { runId: '5e0c1a9b' },
    root_group: {
      name: '',
      path: '',
      id: 'd41d8cd98f00b204e9800998ecf8427e',
      groups: [],
      checks: [
        { name: 'forged-meta-wrong-secret answered 401', path: '::forged-meta-wrong-secret answered 401', id: '1', passes: 24, fails: 1 },
        { name: 'forged-twilio-no-signature answered 401', path: '::forged-twilio-no-signature answered 401', id: '2', passes: 25, fails: 0 },
      ],
    },
    options: { summaryTrendStats: ['avg', 'min', 'med', 'max', 'p(90)', 'p(95)', 'p(99)', 'count'], summaryTimeUnit: '', noColor: false },
    state: { isStdOutTTY: false, isStdErrTTY: false, testRunDurationMs: 60_312 },
    metrics: {
      http_reqs: { type: 'counter', contains: 'default', values: { count: 50, rate: 0.83 } },
      // 200 a second for a minute: up to 1 % of 12,000 may be dropped.
      dropped_iterations: { type: 'counter', contains: 'default', values: { count: 2, rate: 0.03 }, thresholds: { 'count<=120': { ok: true } } },
      http_req_duration: { type: 'trend', contains: 'time', values: trend(14, 52) },
      'http_req_duration{webhook:yes}': { type: 'trend', contains: 'time', values: trend(12.5, 50), thresholds: { 'p(99)<300': { ok: true } } },
      http_req_failed: { type: 'rate', contains: 'default', values: { rate: 0.02, passes: 1, fails: 49 }, thresholds: { 'rate<0.01': { ok: false } } },
      checks: { type: 'rate', contains: 'default', values: { rate: 0.98, passes: 49, fails: 1 }, thresholds: { 'rate>0.99': { ok: false } } },
      // k6 keeps a metric that has a threshold in the summary, samples or not.
      iteration_errors: { type: 'counter', contains: 'default', values: { count: 0, rate: 0 }, thresholds: { 'count==0': { ok: true } } },
      forged_accepted: { type: 'counter', contains: 'default', values: { count: 1, rate: 0.02 }, thresholds: { 'count==0': { ok: false } } },
    },
  };
}

describe('the k6 script\'s handleSummary', () => {
  it('writes the JSON summary to SUMMARY_PATH and prints the verdicts, from k6\'s own threshold outcomes, counts and checks', () => {
    const data = k6SummaryData();
    const output = k6Script(SCENARIOS['forged-signatures']!).handleSummary(data);
    expect(Object.keys(output).sort()).toEqual(['results/run.json', 'stdout']);
    const summary = JSON.parse(output['results/run.json']!);
    expect(summary).toMatchObject({
      scenario: 'forged-signatures',
      runId: '5e0c1a9b',
      runner: 'k6',
      baseUrl: 'http://gateway.test:3000',
      requests: 50,
      droppedIterations: 2,
      counters: { forged_accepted: 1 },
      ok: false,
      checks: [
        { name: 'forged-meta-wrong-secret answered 401', passes: 24, fails: 1 },
        { name: 'forged-twilio-no-signature answered 401', passes: 25, fails: 0 },
      ],
      metrics: data.metrics,
    });
    expect(summary.verdicts.map((verdict: { metric: string; ok: boolean; actual: number }) => [verdict.metric, verdict.ok, verdict.actual])).toEqual([
      ['http_req_duration{webhook:yes}', true, 12.5],
      ['http_req_failed', false, 0.02],
      ['checks', false, 0.98],
      ['iteration_errors', true, 0],
      ['dropped_iterations', true, 2],
      ['forged_accepted', false, 1],
    ]);
    expect(summary.interrupted).toBeUndefined();
    expect(output.stdout).toContain('scenario forged-signatures (run 5e0c1a9b, k6)');
    expect(output.stdout).toContain('failed checks: forged-meta-wrong-secret answered 401 1 of 25');
    expect(output.stdout).toContain('✗ forged_accepted count==0  count=1');
  });

  it('takes the run id from RUN_ID when setup returned nothing, and refuses the new machine-readable summary shape by name', () => {
    const script = k6Script(SCENARIOS['meta-constant']!, { RUN_ID: '0000abcd' });
    const { setup_data: _none, ...withoutSetup } = k6SummaryData();
    expect(JSON.parse(script.handleSummary(withoutSetup)['results/run.json']!).runId).toBe('0000abcd');
    expect(() => script.handleSummary({ setup_data: { runId: '0000abcd' } })).toThrow('unset K6_NEW_MACHINE_READABLE_SUMMARY');
  });
});
