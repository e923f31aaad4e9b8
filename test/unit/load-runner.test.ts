import { runIdLine } from '../../load-tests/lib/ids.ts';
import type { PlannedRequest } from '../../load-tests/lib/payloads.ts';
import { baseThresholds, type ScenarioDefinition } from '../../load-tests/lib/scenario.ts';
import { readSettings } from '../../load-tests/lib/settings.ts';
import { formatSummary } from '../../load-tests/lib/summary.ts';
import { runScenario } from '../../load-tests/runner/run.ts';
import { startLocalServer } from '../support/local-server';

const SETTINGS = readSettings({ WHATSAPP_APP_SECRET: 'a', TWILIO_AUTH_TOKEN: 'b', BASE_URL: 'http://127.0.0.1:9' }, 'unit', { rate: 1, duration: '1s' });
/** 40 a second for half a second: 20 iterations, one due every 25 ms. */
const RATE = 40;
const DUE_EVERY_MS = 1000 / RATE;

/** A scenario whose iterations send nothing unless plan says otherwise: only the arrival loop is under test. */
function scenario(overrides: Partial<ScenarioDefinition>): ScenarioDefinition {
  return {
    name: 'unit',
    description: 'no requests',
    load: { executor: 'constant-arrival-rate', rate: RATE, durationSeconds: 0.5, preAllocatedVUs: 1, maxVUs: 1 },
    thresholds: {},
    counters: [{ name: 'iterations_started', perIteration: () => 1 }],
    plan: async () => [],
    ...overrides,
  };
}

const PLENTY_OF_VUS = { executor: 'constant-arrival-rate', rate: RATE, durationSeconds: 0.5, preAllocatedVUs: 50, maxVUs: 50 } as const;

function request(path: string, iteration: number): PlannedRequest {
  return { path, headers: {}, body: '{}', expectedStatus: 200, tags: { kind: 'meta' }, messageId: `m${iteration}` };
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

  it('drops an iteration that finds every VU started busy and starts one more, up to MAX_VUS, as k6 does', async () => {
    const slow = scenario({
      load: { executor: 'constant-arrival-rate', rate: RATE, durationSeconds: 0.5, preAllocatedVUs: 1, maxVUs: 50 },
      plan: () => new Promise((resolve) => setTimeout(() => resolve([]), 120)),
    });
    const summary = await runScenario(slow, SETTINGS);
    // 120 ms an iteration, one due every 25 ms: the pool grows one VU per drop until it keeps up (about five).
    expect(summary.droppedIterations).toBeGreaterThanOrEqual(3);
    expect(summary.droppedIterations).toBeLessThan(20);
    expect(summary.counters.iterations_started).toBe(20 - summary.droppedIterations);
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

  it('counts an iteration that throws, logs each distinct error once and goes on with the load, as k6 does', async () => {
    const broken = scenario({
      load: PLENTY_OF_VUS,
      plan: async (iteration) => {
        if (iteration === 4) throw new Error('no sender for this iteration');
        if (iteration % 2 === 1) throw new Error('payload builder broke');
        return [];
      },
    });
    const lines: string[] = [];
    const summary = await runScenario(broken, SETTINGS, { log: (line) => lines.push(line) });
    expect(summary.counters.iterations_started).toBe(20);
    // The ten odd iterations and the fourth.
    expect(summary.metrics.iteration_errors?.values.count).toBe(11);
    expect(lines.filter((line) => line.includes('failed:'))).toEqual([
      expect.stringMatching(/^iteration 1 failed: payload builder broke /),
      expect.stringMatching(/^iteration 4 failed: no sender for this iteration /),
    ]);
    expect(formatSummary(summary)).toContain('iterations that threw (script errors): 11');
  });

  it('fails a run whose iterations all threw before sending, which leaves the other thresholds no sample', async () => {
    const broken = scenario({
      load: PLENTY_OF_VUS,
      thresholds: baseThresholds(SETTINGS, { slo: true }),
      plan: async () => {
        throw new Error('crypto.subtle is missing');
      },
    });
    const summary = await runScenario(broken, SETTINGS, { log: () => undefined });
    expect(summary.ok).toBe(false);
    expect(summary.verdicts.filter((verdict) => !verdict.ok)).toEqual([expect.objectContaining({ metric: 'iteration_errors', threshold: 'count==0', actual: 20 })]);
  });

  it('fails a run that dropped more than 1 % of its iterations, whose few in-flight requests alone timed a stall', async () => {
    // Every answer takes 200 ms, two VUs at most, one iteration due every 25 ms: most are dropped unsent.
    const server = await startLocalServer((_req, res) => void setTimeout(() => res.end(), 200));
    try {
      const load = { executor: 'constant-arrival-rate', rate: RATE, durationSeconds: 0.5, preAllocatedVUs: 1, maxVUs: 2 } as const;
      const stalled = scenario({ load, thresholds: baseThresholds(SETTINGS, { slo: false, load }), plan: async (iteration) => [request('/', iteration)] });
      const summary = await runScenario(stalled, { ...SETTINGS, baseUrl: server.baseUrl });
      expect(summary.droppedIterations).toBeGreaterThan(0);
      expect(summary.ok).toBe(false);
      // 20 planned: not one may be dropped. Every answer came within the 300 ms target, so only the drops fail it.
      expect(summary.verdicts.filter((verdict) => !verdict.ok)).toEqual([
        expect.objectContaining({ metric: 'dropped_iterations', threshold: 'count<=0', actual: summary.droppedIterations }),
      ]);
    } finally {
      await server.close();
    }
  });

  it('prints the run id before the first request, as k6\'s setup does', async () => {
    const server = await startLocalServer((_req, res) => res.end());
    try {
      const events: string[] = [];
      const one = scenario({ load: PLENTY_OF_VUS, plan: async (iteration) => (iteration === 0 ? [request('/', iteration)] : []) });
      const summary = await runScenario(one, { ...SETTINGS, baseUrl: server.baseUrl }, {
        log: (line) => events.push(line),
        onAnswer: (answer) => events.push(`answer ${answer.messageId}`),
      });
      expect(events).toEqual([runIdLine('unit', summary.runId), 'answer m0']);
    } finally {
      await server.close();
    }
  });

  it('records a request that was never written (refused) as k6 does: 0 ms in http_req_duration, failed, its check failed, and its wait in latency_from_due_ms', async () => {
    // Port 9 refuses: no request is ever written.
    const refused = scenario({ load: PLENTY_OF_VUS, plan: async (iteration) => [request('/webhooks/meta', iteration)] });
    const summary = await runScenario(refused, SETTINGS);
    expect(summary.requests).toBe(20);
    expect(summary.metrics.http_req_duration?.values).toMatchObject({ count: 20, max: 0 });
    expect(summary.metrics.http_req_failed?.values).toMatchObject({ rate: 1, passes: 20 });
    expect(summary.checks).toEqual([{ name: 'meta answered 200', passes: 0, fails: 20 }]);
    expect(summary.metrics.latency_from_due_ms?.values.count).toBe(20);
    expect(summary.metrics.latency_from_due_ms?.values.min).toBeGreaterThan(0);
  });

  it('counts latency from when a request was due, so requests due while the generator stalled show the stall', async () => {
    const server = await startLocalServer((_req, res) => res.end());
    const STALL_MS = 400;
    try {
      const stalling = scenario({
        load: PLENTY_OF_VUS,
        plan: async (iteration) => {
          // The first iteration holds the event loop: the iterations due meanwhile can leave only after it.
          if (iteration === 0) for (const until = performance.now() + STALL_MS; performance.now() < until; );
          return [request('/', iteration)];
        },
      });
      const summary = await runScenario(stalling, { ...SETTINGS, baseUrl: server.baseUrl });
      expect(summary.requests).toBe(20);
      const fromDue = summary.metrics.latency_from_due_ms!.values;
      // The first iteration's own request and the second's (due one interval in) left after the stall:
      // the two largest of 20 samples, which p(99) lies between.
      expect(fromDue['p(99)']).toBeGreaterThanOrEqual(STALL_MS - DUE_EVERY_MS);
      expect(summary.metrics.request_start_lag_ms!.values['p(99)']).toBeGreaterThanOrEqual(STALL_MS - DUE_EVERY_MS);
    } finally {
      await server.close();
    }
  });

  it('stops starting iterations when interrupted, counts what is answered within the grace, and sums up without what never is', async () => {
    const server = await startLocalServer((req, res) => {
      if (req.url !== '/held') res.end();
    });
    try {
      const stop = new AbortController();
      let answered = 0;
      let allAnswered = () => {};
      const firstFourAnswered = new Promise<void>((resolve) => (allAnswered = resolve));
      const planned: number[] = [];
      let startedBeforeTheSignal = 0;
      const long = scenario({
        load: { ...PLENTY_OF_VUS, durationSeconds: 30 },
        plan: async (iteration) => {
          planned.push(iteration);
          if (iteration < 4) return [request('/', iteration)];
          // Iterations from the fifth on wait for the first four's answers; on a busy machine more
          // than one may be due by then. The first to go on sends the signal.
          await firstFourAnswered;
          if (!stop.signal.aborted) {
            stop.abort('SIGINT');
            startedBeforeTheSignal = planned.length;
          }
          // Sent after the signal: one answered within the grace counts, one never answered neither holds the run nor counts.
          return [request('/', iteration), request('/held', iteration)];
        },
      });
      const summary = await runScenario(long, { ...SETTINGS, baseUrl: server.baseUrl }, { onAnswer: () => ++answered === 4 && allAnswered() }, stop.signal);
      // None started after the signal, and each that had started sent its answered request.
      expect(startedBeforeTheSignal).toBeGreaterThanOrEqual(5);
      expect(planned).toEqual([...Array(startedBeforeTheSignal).keys()]);
      const answeredRequests = startedBeforeTheSignal;
      expect(summary).toMatchObject({ interrupted: 'SIGINT', requests: answeredRequests, checks: [{ name: 'meta answered 200', passes: answeredRequests, fails: 0 }] });
      expect(formatSummary(summary)).toContain('interrupted by SIGINT: the verdicts judge only what ran');
    } finally {
      await server.close();
    }
  });
});
