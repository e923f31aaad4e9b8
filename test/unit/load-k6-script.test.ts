/**
 * The k6 glue, run in jest with k6's modules stubbed as k6 documents them: the options k6 is
 * given, and what each iteration sends, checks and counts.
 */
import { META_WEBHOOK_PATH, TWILIO_WEBHOOK_PATH } from '../../load-tests/lib/payloads.ts';
import type { ScenarioModule } from '../../load-tests/lib/scenario.ts';
import { createK6Script } from '../../load-tests/k6/script.ts';
import { SCENARIOS } from '../../load-tests/scenarios/index.ts';
import { verifyMetaSignature } from '../../src/webhooks/meta';
import { parseForm, verifyTwilioSignature } from '../../src/webhooks/twilio';
import { inboundRequest } from './fixtures';

interface BatchRequest {
  method: string;
  url: string;
  body: string;
  params: { headers: Record<string, string>; tags: Record<string, string>; timeout: string; responseCallback: unknown };
}

/** What the stubbed k6 was given, and what it answers. */
const mockK6 = {
  iterationInTest: 0,
  batches: [] as BatchRequest[][],
  answerStatus: (_request: BatchRequest) => 200,
  checks: [] as { name: string; ok: boolean; tags: unknown }[],
  metrics: new Map<string, number[]>(),
};

jest.mock('k6', () => ({
  check: (value: unknown, sets: Record<string, (v: unknown) => boolean>, tags?: object) =>
    Object.entries(sets).every(([name, test]) => {
      const ok = test(value);
      mockK6.checks.push({ name, ok, tags });
      return ok;
    }),
  sleep: () => {},
}), { virtual: true });
jest.mock('k6/http', () => {
  const http = {
    // An opaque object in k6; here it keeps the statuses, to compare.
    expectedStatuses: (...statuses: unknown[]) => ({ expectedStatuses: statuses }),
    batch: (requests: BatchRequest[]) => {
      mockK6.batches.push(requests);
      return requests.map((request) => ({ status: mockK6.answerStatus(request), headers: {} }));
    },
    get: () => {
      throw new Error('no stats endpoint here');
    },
  };
  return { __esModule: true, default: http, ...http };
}, { virtual: true });
jest.mock('k6/execution', () => ({ __esModule: true, default: { scenario: { get iterationInTest() { return mockK6.iterationInTest; } } } }), { virtual: true });
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

const META_SECRET = 'k6-meta-secret';
const TWILIO_TOKEN = 'k6-twilio-token';
const ENV = {
  BASE_URL: 'http://gateway.test:3000',
  PUBLIC_BASE_URL: 'https://shop.example.com',
  WHATSAPP_APP_SECRET: META_SECRET,
  TWILIO_AUTH_TOKEN: TWILIO_TOKEN,
  ADMIN_TOKEN: 'admin',
  SUMMARY_PATH: 'results/run.json',
};

/** The script as k6 builds it in its init context, with these -e settings. */
function k6Script(scenario: ScenarioModule, env: Record<string, string> = {}) {
  (globalThis as { __ENV?: Record<string, string> }).__ENV = { ...ENV, ...env };
  return createK6Script(scenario);
}

async function runIterations(script: ReturnType<typeof k6Script>, count: number, runId = '0badcafe') {
  for (let i = 0; i < count; i++) {
    mockK6.iterationInTest = i;
    await script.iterate({ runId });
  }
}

beforeEach(() => {
  mockK6.iterationInTest = 0;
  mockK6.batches = [];
  mockK6.answerStatus = () => 200;
  mockK6.checks = [];
  mockK6.metrics.clear();
});

describe('the k6 script\'s options', () => {
  it('refuses in its init context a load that starts no iteration, as npm run load does, rather than pass every threshold having sent nothing', () => {
    expect(() => k6Script(SCENARIOS['mixed-ramping']!, { RATE: '1', DURATION: '1s' })).toThrow('RATE and DURATION give this load no iteration to start');
  });

  it('gives a constant scenario k6\'s constant-arrival-rate executor, the thresholds and the trend stats the summary reads', () => {
    const { options } = k6Script(SCENARIOS['meta-constant']!, { RATE: '50', DURATION: '30s', PRE_ALLOCATED_VUS: '10', MAX_VUS: '60' });
    expect(options).toEqual({
      scenarios: { 'meta-constant': { executor: 'constant-arrival-rate', rate: 50, timeUnit: '1s', duration: '30s', preAllocatedVUs: 10, maxVUs: 60 } },
      thresholds: {
        'http_req_duration{webhook:yes}': ['p(99)<300'],
        http_req_failed: ['rate<0.01'],
        checks: ['rate>0.99'],
        iteration_errors: ['count==0'],
        // 1 % of 50 a second for 30 s.
        dropped_iterations: ['count<=15'],
        'http_req_duration{slo:ack}': ['p(99)<20'],
      },
      summaryTrendStats: ['avg', 'min', 'med', 'max', 'p(90)', 'p(95)', 'p(99)', 'count'],
      batch: 6,
      batchPerHost: 6,
      teardownTimeout: '30s',
    });
  });

  it('ramps mixed-ramping with ramping-arrival-rate from 0, over a quarter, holding, and down over the last quarter; MAX_VUS defaults to the rate', () => {
    const { options } = k6Script(SCENARIOS['mixed-ramping']!, { RATE: '400', DURATION: '2m' });
    expect(options.scenarios).toEqual({
      'mixed-ramping': {
        executor: 'ramping-arrival-rate',
        startRate: 0,
        timeUnit: '1s',
        stages: [{ target: 400, duration: '30s' }, { target: 400, duration: '60s' }, { target: 0, duration: '30s' }],
        preAllocatedVUs: 80,
        maxVUs: 400,
      },
    });
  });

  it('lets a duplicate storm\'s copies out at once, judges the flooder on its own, and gives teardown the drain\'s time', () => {
    expect(k6Script(SCENARIOS['duplicate-storm']!, { COPIES: '8' }).options).toMatchObject({ batch: 8, batchPerHost: 8 });
    expect(k6Script(SCENARIOS['sender-flood']!).options.thresholds).toMatchObject({ 'http_req_duration{sender:flood}': ['p(99)<300'] });
    // The default 500/s for 2 minutes: at least half of its 60,000 messages must pile up.
    expect(k6Script(SCENARIOS.backlog!, { DRAIN_TIMEOUT: '120' }).options).toMatchObject({
      thresholds: { backlog_messages: ['count>=30000'], backlog_left: ['count==0'] },
      teardownTimeout: '150s',
    });
  });

  it.each(Object.keys(SCENARIOS))('exports from load-tests/%s.ts what k6 runs: options, setup, the iteration, teardown and handleSummary', (name) => {
    (globalThis as { __ENV?: Record<string, string> }).__ENV = ENV;
    jest.isolateModules(() => {
      const entry = require(`../../load-tests/${name}.ts`);
      expect(entry.options).toEqual(k6Script(SCENARIOS[name]!).options);
      for (const exported of ['default', 'setup', 'teardown', 'handleSummary']) expect(typeof entry[exported]).toBe('function');
    });
  });
});

describe('the k6 script\'s iterations', () => {
  it('sends a signed Meta body exactly as signed, expecting 200, tagged for the SLO, within 10 s', async () => {
    await runIterations(k6Script(SCENARIOS['meta-constant']!), 1);
    const [[request]] = mockK6.batches as [[BatchRequest]];
    expect(request).toMatchObject({ method: 'POST', url: ENV.BASE_URL + META_WEBHOOK_PATH });
    expect(request.params).toMatchObject({ tags: { kind: 'meta', slo: 'ack' }, timeout: '10s', responseCallback: { expectedStatuses: [200] } });
    expect(verifyMetaSignature(inboundRequest(request.body, request.params.headers), [META_SECRET])).toBe(true);
    expect(JSON.parse(request.body).entry[0].changes[0].value.messages[0].id).toBe('wamid.load.meta-constant.0badcafe.0');
    expect(mockK6.checks).toEqual([{ name: 'meta answered 200', ok: true, tags: { kind: 'meta', slo: 'ack' } }]);
  });

  it('signs a Twilio form over PUBLIC_BASE_URL and sends it to BASE_URL', async () => {
    await runIterations(k6Script(SCENARIOS['twilio-constant']!), 1);
    const [[request]] = mockK6.batches as [[BatchRequest]];
    expect(request.url).toBe(ENV.BASE_URL + TWILIO_WEBHOOK_PATH);
    const check = { secrets: [TWILIO_TOKEN], url: ENV.PUBLIC_BASE_URL + TWILIO_WEBHOOK_PATH, params: parseForm(Buffer.from(request.body, 'utf8')) };
    expect(verifyTwilioSignature({ ...check, signature: request.params.headers['X-Twilio-Signature'] })).toBe(true);
  });

  it('passes each forgery\'s 401 as its only expected status, so refusals stay out of http_req_failed and an acceptance counts', async () => {
    const script = k6Script(SCENARIOS['forged-signatures']!);
    mockK6.answerStatus = () => 401;
    await runIterations(script, 8);
    const requests = mockK6.batches.flat();
    expect(new Set(requests.map((request) => request.params.tags.kind)).size).toBe(8);
    expect(requests.every((request) => JSON.stringify(request.params.responseCallback) === JSON.stringify({ expectedStatuses: [401] }))).toBe(true);
    expect(mockK6.checks.every((check) => check.ok && check.name.endsWith(' answered 401'))).toBe(true);
    // A forgery the gateway accepted.
    mockK6.answerStatus = () => 200;
    await runIterations(script, 1);
    expect(mockK6.checks.at(-1)).toMatchObject({ name: 'forged-meta-wrong-secret answered 401', ok: false });
    expect(mockK6.metrics.get('forged_accepted')).toEqual([0, 0, 0, 0, 0, 0, 0, 0, 1]);
  });

  it('sends a duplicate storm\'s copies in one batch and counts the ids and the copies', async () => {
    await runIterations(k6Script(SCENARIOS['duplicate-storm']!, { COPIES: '3', ITERATIONS_PER_ID: '2' }), 4);
    expect(mockK6.batches.map((batch) => batch.length)).toEqual([3, 3, 3, 3]);
    expect(new Set(mockK6.batches[0]!.map((request) => request.body)).size).toBe(1);
    expect(mockK6.metrics.get('storm_ids')).toEqual([1, 0, 1, 0]);
    expect(mockK6.metrics.get('duplicate_copies')).toEqual([2, 3, 2, 3]);
  });

  it('counts an iteration that throws in iteration_errors and rethrows, for k6 to log and go on', async () => {
    const broken: ScenarioModule = {
      ...SCENARIOS['meta-constant']!,
      define: (settings) => ({ ...SCENARIOS['meta-constant']!.define(settings), plan: async () => Promise.reject(new Error('payload builder broke')) }),
    };
    await expect(runIterations(k6Script(broken), 1)).rejects.toThrow('payload builder broke');
    expect(mockK6.metrics.get('iteration_errors')).toEqual([1]);
    expect(mockK6.batches).toEqual([]);
  });
});
