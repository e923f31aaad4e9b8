import { arrivalSchedule } from '../../load-tests/runner/arrival.ts';
import { DEFAULT_RETRY_AFTER_SECONDS, DRAIN_POLL_SECONDS, createDrainClock, retryAfterSeconds, statsPathCovering } from '../../load-tests/lib/backlog.ts';
import { readSettings, parseDuration, shareFrom } from '../../load-tests/lib/settings.ts';
import { buildSummary, formatSummary } from '../../load-tests/lib/summary.ts';
import { judge, parseThreshold, percentile, trendValues } from '../../load-tests/lib/thresholds.ts';
import { SCENARIOS } from '../../load-tests/scenarios/index.ts';
import { refuseEmptyLoad } from '../../load-tests/lib/scenario.ts';

const ENV = { WHATSAPP_APP_SECRET: 'a', TWILIO_AUTH_TOKEN: 'b', ADMIN_TOKEN: 'c' };

describe('load-test thresholds, as k6 judges them', () => {
  it('judges percentiles, rates and counts with every operator', () => {
    const metrics = {
      http_req_duration: { type: 'trend' as const, values: { 'p(99)': 12 } },
      http_req_failed: { type: 'rate' as const, values: { rate: 0.02 } },
      forged_accepted: { type: 'counter' as const, values: { count: 0 } },
    };
    const verdicts = judge(
      { http_req_duration: ['p(99)<20', 'p(99.0)<=12', 'p(99)>12'], http_req_failed: ['rate<0.01'], forged_accepted: ['count==0', 'count!=0'] },
      metrics,
    );
    expect(verdicts.map((v) => [v.metric, v.threshold, v.ok])).toEqual([
      ['http_req_duration', 'p(99)<20', true],
      ['http_req_duration', 'p(99.0)<=12', true],
      ['http_req_duration', 'p(99)>12', false],
      ['http_req_failed', 'rate<0.01', false],
      ['forged_accepted', 'count==0', true],
      ['forged_accepted', 'count!=0', false],
    ]);
  });

  it('keeps the outcome k6 already decided, and passes a metric without samples as k6 does', () => {
    const verdicts = judge(
      { checks: ['rate>0.99'], 'http_req_duration{slo:ack}': ['p(99)<20'] },
      { checks: { type: 'rate', values: { rate: 1 }, thresholds: { 'rate>0.99': { ok: false } } } },
    );
    expect(verdicts).toEqual([
      { metric: 'checks', threshold: 'rate>0.99', ok: false, actual: 1, aggregation: 'rate', samples: null },
      { metric: 'http_req_duration{slo:ack}', threshold: 'p(99)<20', ok: true, actual: null, aggregation: 'p(99)', samples: 0 },
    ]);
  });

  it('reads an empty trend or rate in k6\'s summary as no samples, not as a measured 0, while a counter\'s 0 counts', () => {
    // k6 keeps a metric with a threshold in the summary even when nothing was measured, with 0 percentiles.
    const verdicts = judge(
      { 'http_req_duration{slo:ack}': ['p(99)<20'], 'checks{kind:genuine}': ['rate>0.99'], forged_accepted: ['count==0'], http_req_duration: ['p(99)<300'] },
      {
        'http_req_duration{slo:ack}': { type: 'trend', values: { 'p(99)': 0, count: 0 }, thresholds: { 'p(99)<20': { ok: true } } },
        'checks{kind:genuine}': { type: 'rate', values: { rate: 0, passes: 0, fails: 0 } },
        forged_accepted: { type: 'counter', values: { count: 0 } },
        http_req_duration: { type: 'trend', values: { 'p(99)': 14, count: 3 } },
      },
    );
    expect(verdicts.map((v) => [v.metric, v.ok, v.actual])).toEqual([
      ['http_req_duration{slo:ack}', true, null],
      ['checks{kind:genuine}', true, null],
      ['forged_accepted', true, 0],
      ['http_req_duration', true, 14],
    ]);
  });

  it('prints how many samples each trend or rate was judged on, so a tagged subset missing its tag shows', () => {
    const summary = buildSummary({
      scenario: 'unit',
      description: 'samples per threshold',
      runId: '00000000',
      runner: 'k6',
      baseUrl: 'http://127.0.0.1:3000',
      load: { executor: 'constant-arrival-rate', rate: 1, durationSeconds: 1, preAllocatedVUs: 1, maxVUs: 1 },
      thresholds: { 'http_req_duration{slo:ack}': ['p(99)<20'], http_req_failed: ['rate<0.01'], forged_accepted: ['count==0'] },
      counterNames: ['forged_accepted'],
      metrics: {
        'http_req_duration{slo:ack}': { type: 'trend', values: { 'p(99)': 6.5, count: 3 } },
        http_req_failed: { type: 'rate', values: { rate: 0, passes: 0, fails: 200 } },
        forged_accepted: { type: 'counter', values: { count: 0 } },
      },
      checks: [],
    });
    const printed = formatSummary(summary);
    expect(printed).toContain('✓ http_req_duration{slo:ack} p(99)<20  p(99)=6.50ms (3 samples)');
    expect(printed).toContain('✓ http_req_failed rate<0.01  rate=0.00% (200 samples)');
    expect(printed).toContain('✓ forged_accepted count==0  count=0\n');
  });

  it('refuses a threshold it cannot evaluate, naming it', () => {
    expect(() => parseThreshold('p99 < 20')).toThrow('unsupported threshold "p99 < 20"');
  });

  it('interpolates percentiles between ranks as k6 does', () => {
    expect(percentile([1, 2, 3, 4], 50)).toBe(2.5);
    expect(trendValues([5, 1, 3])).toMatchObject({ min: 1, med: 3, max: 5, avg: 3, count: 3 });
  });
});

describe('load-test arrival schedule', () => {
  it('spaces a constant rate evenly, the first iteration at the start, as k6\'s constant-arrival-rate does', () => {
    const schedule = arrivalSchedule({ executor: 'constant-arrival-rate', rate: 500, durationSeconds: 2, preAllocatedVUs: 1, maxVUs: 1 });
    expect(schedule.total).toBe(1000);
    expect(schedule.dueMs(0)).toBe(0);
    expect(schedule.dueMs(999)).toBeCloseTo(1998);
    // k6 starts every iteration due before the end: at 0, ⅓, ⅔ and 1 s of 1.1 s.
    expect(arrivalSchedule({ executor: 'constant-arrival-rate', rate: 3, durationSeconds: 1.1, preAllocatedVUs: 1, maxVUs: 1 }).total).toBe(4);
    expect(arrivalSchedule({ executor: 'constant-arrival-rate', rate: 10, durationSeconds: 0.3, preAllocatedVUs: 1, maxVUs: 1 }).total).toBe(3);
  });

  it('ramps: iteration n (from 1) starts when the area under the rate reaches n, as k6\'s ramping-arrival-rate does', () => {
    const schedule = arrivalSchedule({
      executor: 'ramping-arrival-rate',
      startRate: 0,
      stages: [
        { target: 100, durationSeconds: 2 },
        { target: 100, durationSeconds: 1 },
        { target: 0, durationSeconds: 1 },
      ],
      preAllocatedVUs: 1,
      maxVUs: 1,
    });
    // 100 during the ramp up, 100 while holding, 50 during the ramp down.
    expect(schedule.total).toBe(250);
    // 0→100/s over 2 s: the area is 25·t², so nothing starts at 0 and the first starts at √(1/25) s.
    expect(schedule.dueMs(0)).toBeCloseTo(200);
    expect(schedule.dueMs(24)).toBeCloseTo(1000); // the 25th, when 25 are due
    expect(schedule.dueMs(99)).toBeCloseTo(2000); // the 100th ends the ramp
    expect(schedule.dueMs(100)).toBeCloseTo(2010); // then one every 10 ms while holding
    expect(schedule.dueMs(149)).toBeCloseTo(2500);
    const dues = Array.from({ length: 250 }, (_, n) => schedule.dueMs(n));
    expect(dues.every((due, n) => n === 0 || due > dues[n - 1]!)).toBe(true);
    // The 250th when the whole area is reached, at the very end.
    expect(dues[249]!).toBeCloseTo(4000);
  });

  it('refuses a load that starts no iteration, whatever its stages, and takes one that starts a single one', () => {
    const ramp = (startRate: number, stages: { target: number; durationSeconds: number }[]) =>
      ({ executor: 'ramping-arrival-rate' as const, startRate, stages, preAllocatedVUs: 1, maxVUs: 1 });
    // 0 → 1/s over 0.25 s, 1/s for 0.5 s, 1 → 0/s over 0.25 s: three quarters of an iteration.
    expect(() => refuseEmptyLoad(ramp(0, [{ target: 1, durationSeconds: 0.25 }, { target: 1, durationSeconds: 0.5 }, { target: 0, durationSeconds: 0.25 }])))
      .toThrow('RATE and DURATION give this load no iteration to start');
    // From 1/s down to 0 over 2 s: one, as the schedule starts it.
    const single = ramp(1, [{ target: 0, durationSeconds: 2 }]);
    expect(() => refuseEmptyLoad(single)).not.toThrow();
    expect(arrivalSchedule(single).total).toBe(1);
    expect(() => refuseEmptyLoad({ executor: 'constant-arrival-rate', rate: 1, durationSeconds: 0.5, preAllocatedVUs: 1, maxVUs: 1 })).not.toThrow();
  });

  it('starts a ramp from a non-zero rate one interval in, not at the start', () => {
    const schedule = arrivalSchedule({ executor: 'ramping-arrival-rate', startRate: 10, stages: [{ target: 10, durationSeconds: 1 }], preAllocatedVUs: 1, maxVUs: 1 });
    expect(schedule.total).toBe(10);
    expect(schedule.dueMs(0)).toBeCloseTo(100);
    expect(schedule.dueMs(9)).toBeCloseTo(1000);
  });
});

describe('load-test settings', () => {
  it('reads k6 durations', () => {
    expect(parseDuration('30s', 'DURATION')).toBe(30);
    expect(parseDuration('1h30m', 'DURATION')).toBe(5400);
    expect(parseDuration('250ms', 'DURATION')).toBe(0.25);
    expect(parseDuration('2', 'DURATION')).toBe(2);
    expect(() => parseDuration('soon', 'DURATION')).toThrow('DURATION must be a duration');
  });

  it('counts a forged request as accepted only when it got a 2xx, not when it timed out or was shed', () => {
    const forged = SCENARIOS['forged-signatures']!;
    const accepted = forged.define(readSettings(ENV, 'forged-signatures', forged.defaults)).counters.find((c) => c.name === 'forged_accepted')!;
    const request = { path: '/webhooks/meta', headers: {}, body: '{}', expectedStatus: 401, tags: { kind: 'forged-meta' }, messageId: 'm' };
    expect([200, 202, 0, 401, 429, 503].map((status) => accepted.perAnswer!(request, status))).toEqual([true, true, false, false, false, false]);
  });

  it('asks the stats endpoint for a window that covers the load and the drain wait, so the backlog cannot age out of the count', () => {
    expect(statsPathCovering(120 + 600)).toBe('/api/v1/whatsapp-hardened/stats?hours=2');
    expect(statsPathCovering(2 * 3600 + 600)).toBe('/api/v1/whatsapp-hardened/stats?hours=4');
    // The endpoint takes at most 90 days.
    expect(statsPathCovering(400 * 24 * 3600)).toBe('/api/v1/whatsapp-hardened/stats?hours=2160');
  });

  it('times the drain from the last poll that saw the whole backlog, not from the prompt to start a worker', () => {
    const clock = createDrainClock(1000, 0);
    // The operator starts a worker late: three polls still see all 1000 messages.
    [[1000, 5_000], [1000, 10_000], [1000, 15_000], [600, 20_000], [0, 25_000]].forEach(([left, at]) => clock.observe(left!, at!));
    expect(clock.secondsUntil(25_000)).toBe(10);
  });

  it('takes a share from 0 to 1, the ends included, and nothing outside', () => {
    expect(shareFrom({ META_SHARE: '0' }, 'META_SHARE', 0.5)).toBe(0);
    expect(shareFrom({ META_SHARE: '1' }, 'META_SHARE', 0.5)).toBe(1);
    expect(shareFrom({}, 'META_SHARE', 0.5)).toBe(0.5);
    expect(() => shareFrom({ META_SHARE: '-0.1' }, 'META_SHARE', 0.5)).toThrow('META_SHARE must be between 0 and 1');
    expect(() => shareFrom({ META_SHARE: 'half' }, 'META_SHARE', 0.5)).toThrow('META_SHARE must be between 0 and 1');
  });

  it('names the variable that is wrong or missing, without its value', () => {
    expect(() => readSettings({ ...ENV, RATE: 'fast' }, 'x', { rate: 1, duration: '1s' })).toThrow('RATE must be a positive number');
    expect(() => readSettings({ TWILIO_AUTH_TOKEN: 'b' }, 'x', { rate: 1, duration: '1s' })).toThrow('WHATSAPP_APP_SECRET is required');
    expect(() => readSettings({ ...ENV, BASE_URL: 'localhost:3000' }, 'x', { rate: 1, duration: '1s' })).toThrow('BASE_URL must be');
  });

  it('requires only the secrets a scenario signs with, and every scenario plans its requests with those alone', async () => {
    const secrets = { meta: { WHATSAPP_APP_SECRET: 'a' }, twilio: { TWILIO_AUTH_TOKEN: 'b' } } as const;
    for (const scenario of Object.values(SCENARIOS)) {
      const signs = scenario.defaults.signs!;
      const env = Object.assign({ ADMIN_TOKEN: 'c', RATE: '10', SENDERS: '3' }, ...signs.map((signer) => secrets[signer]));
      const settings = readSettings(env, scenario.name, scenario.defaults);
      const definition = scenario.define(settings);
      // Enough iterations for every kind of request a scenario mixes in (a flood's others, a mix's Twilio share).
      for (let iteration = 0; iteration < 40; iteration += 1) {
        const requests = await definition.plan(iteration, { runId: '5e0c1a9b', settings });
        expect(requests.length).toBeGreaterThan(0);
      }
      for (const missing of (['meta', 'twilio'] as const).filter((signer) => signs.includes(signer))) {
        const without = { ...env, ...Object.fromEntries(Object.keys(secrets[missing]).map((name) => [name, ''])) };
        expect(() => readSettings(without, scenario.name, scenario.defaults)).toThrow(`${Object.keys(secrets[missing])[0]} is required`);
      }
    }
  });

  it('refuses what k6 would refuse at start: a fractional rate, a run under a second, fewer VUs than it starts with', () => {
    const defaults = { rate: 100, duration: '10s' };
    expect(() => readSettings({ ...ENV, RATE: '2.5' }, 'x', defaults)).toThrow(/RATE must be a whole number/);
    expect(() => readSettings({ ...ENV, DURATION: '500ms' }, 'x', defaults)).toThrow('DURATION must be at least 1s');
    expect(() => readSettings({ ...ENV, MAX_VUS: '10', PRE_ALLOCATED_VUS: '30' }, 'x', defaults)).toThrow('MAX_VUS must be at least PRE_ALLOCATED_VUS');
    // A lower MAX_VUS alone brings the VUs started up front down with it.
    expect(readSettings({ ...ENV, MAX_VUS: '10' }, 'x', defaults)).toMatchObject({ maxVUs: 10, preAllocatedVUs: 10 });
    expect(readSettings(ENV, 'x', defaults)).toMatchObject({ rate: 100, maxVUs: 100, preAllocatedVUs: 20 });
  });

  it('refuses a flood run without a flooder or without other senders: one of its thresholds would pass unjudged', () => {
    const flood = SCENARIOS['sender-flood']!;
    for (const share of ['0', '1']) {
      expect(() => flood.define(readSettings({ ...ENV, FLOOD_SHARE: share }, flood.name, flood.defaults))).toThrow('FLOOD_SHARE must be above 0 and below 1');
    }
    expect(flood.define(readSettings({ ...ENV, FLOOD_SHARE: '0.9' }, flood.name, flood.defaults)).description).toContain('90 %');
    // One iteration in all: the others' alone, the flooder's threshold unjudged. Two at a share of a half give each one.
    expect(() => flood.define(readSettings({ ...ENV, RATE: '1', DURATION: '1s' }, flood.name, flood.defaults))).toThrow('too few for FLOOD_SHARE 0.5');
    expect(() => flood.define(readSettings({ ...ENV, RATE: '5', DURATION: '1s', FLOOD_SHARE: '0.1' }, flood.name, flood.defaults))).toThrow('too few for FLOOD_SHARE 0.1');
    expect(flood.define(readSettings({ ...ENV, RATE: '2', DURATION: '1s' }, flood.name, flood.defaults)).load).toMatchObject({ rate: 2 });
  });

  it('allows each scenario at most 1 % of its iterations dropped, of a ramp as of a constant rate', () => {
    const judged = (name: string, env: Record<string, string>) => SCENARIOS[name]!.define(readSettings({ ...ENV, ...env }, name, SCENARIOS[name]!.defaults)).thresholds.dropped_iterations;
    expect(judged('meta-constant', { RATE: '500', DURATION: '1m' })).toEqual(['count<=300']);
    // Half of 400 a second for 40 s (the ramps), and 400 a second for 40 s.
    expect(judged('mixed-ramping', { RATE: '400', DURATION: '80s' })).toEqual(['count<=240']);
    expect(judged('twilio-constant', { RATE: '10', DURATION: '5s' })).toEqual(['count<=0']);
  });

  it('waits as long as the stats endpoint\'s Retry-After says, and polls it within its limit', () => {
    expect(retryAfterSeconds('7')).toBe(7);
    expect(retryAfterSeconds(null)).toBe(DEFAULT_RETRY_AFTER_SECONDS);
    expect(retryAfterSeconds('soon')).toBe(DEFAULT_RETRY_AFTER_SECONDS);
    // ADMIN_RATE_LIMIT_PER_MINUTE's default is 30 a minute.
    expect(60 / DRAIN_POLL_SECONDS).toBeLessThanOrEqual(30);
  });

  it('gives every sender fewer than 50 messages by default, so the rate limit is not what a long run measures', () => {
    const settings = readSettings(ENV, 'soak', SCENARIOS.soak!.defaults);
    expect(settings.durationSeconds).toBe(1800);
    expect((settings.rate * settings.durationSeconds) / settings.senders).toBeLessThanOrEqual(50);
  });

  it('defines every scenario with the shared thresholds', () => {
    for (const scenario of Object.values(SCENARIOS)) {
      const definition = scenario.define(readSettings(ENV, scenario.name, scenario.defaults));
      expect(definition.thresholds).toMatchObject({ 'http_req_duration{webhook:yes}': ['p(99)<300'], http_req_failed: ['rate<0.01'], checks: ['rate>0.99'] });
    }
    expect(Object.keys(SCENARIOS).sort()).toEqual(
      ['backlog', 'duplicate-storm', 'forged-signatures', 'meta-constant', 'mixed-ramping', 'sender-flood', 'soak', 'twilio-constant'],
    );
  });
});
