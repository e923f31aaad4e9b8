import { durableCeiling, formatReport, medianNetBackendCostRatio, medianOfRoundRatios, medianPhase, roundCeilings, type Summary } from '../../bench/report';
import type { PhaseResult } from '../../bench/scenarios';

function phase(server: string, requestsPerSecond: number, cores: { server: number; postgres: number; rabbitmq: number; loadGenerator: number; other: number }): PhaseResult {
  return {
    server,
    requestsPerSecond,
    ok: requestsPerSecond * 5,
    non2xx: 0,
    errors: 0,
    latencyMs: { p50: 1, p90: 2, p99: 3, max: 4 },
    peakRssMib: 100,
    cpuCores: { ...cores, machineCores: cores.server + cores.postgres + cores.rabbitmq + cores.loadGenerator + cores.other },
  };
}

function summary(machineCores: number): Summary {
  const bare = phase('bare express', 10_000, { server: 0.8, postgres: 0, rabbitmq: 0, loadGenerator: 0.9, other: 0.3 });
  // 2,500 req/s on 1.5 cores in all: 0.6 ms of CPU a request, so 2 cores allow 3,333 req/s.
  const durable = phase('wagate durable', 2_500, { server: 0.6, postgres: 0.4, rabbitmq: 0.25, loadGenerator: 0.25, other: 0.2 });
  return {
    rounds: 1,
    settings: { a: { connections: 64, warmupSeconds: 2, seconds: 5 }, b: { rate: 500, warmupSeconds: 2, seconds: 5 } },
    scenarioA: { bare, durable, throughputRatio: durable.requestsPerSecond / bare.requestsPerSecond },
    scenarioB: { bare, durable },
    lifetimePeakRssMib: { bare: 90, durable: 150 },
    serverMemoryLimitMib: 512,
    machineCores,
    checks: [],
  };
}

it('puts the durable ceiling where every core is busy at the CPU per request measured, leaving out "other"', () => {
  const ceiling = durableCeiling(summary(2));
  expect(ceiling.requestsPerSecond).toBeCloseTo(2 / (1.5 / 2_500), 6);
  expect(ceiling.ratio).toBeCloseTo(2 / (1.5 / 2_500) / 10_000, 6);
});

it('grows with the cores the parties share', () => {
  expect(durableCeiling(summary(4)).requestsPerSecond).toBeCloseTo(2 * durableCeiling(summary(2)).requestsPerSecond, 6);
});

it('prints the CPU per request of each party and the ceiling beside the throughput target', () => {
  const report = formatReport(summary(2));
  expect(report).toMatch(/all of them\s+0\.170\s+0\.600/);
  expect(report).toContain("wagate durable could ack at most 3333 req/s: 33.3 % of bare express's 10000");
  expect(report).toContain('at 64 connections: 25.0 % (at most 33.3 % on these cores, see above)');
});

it('takes a ratio of two phases round by round, so that it is a value some round produced', () => {
  const idle = { server: 0.5, postgres: 0, rabbitmq: 0, loadGenerator: 0.5, other: 0 };
  const bare = [100, 200, 300].map((rps) => phase('bare express', rps, idle));
  const durable = [30, 50, 100].map((rps) => phase('wagate durable', rps, idle));
  // Round by round: 0.30, 0.25, 0.33. The ratio of the medians (50 / 200) is the lowest round's, by chance only.
  expect(medianOfRoundRatios(durable, bare, (p) => p.requestsPerSecond)).toBeCloseTo(0.3, 6);
  expect(medianPhase(durable).requestsPerSecond / medianPhase(bare).requestsPerSecond).toBeCloseTo(0.25, 6);
});

it('takes the backends\' idle CPU, seen during the bare phase, out of their cost per message at both rates', () => {
  const cores = (postgres: number, rabbitmq: number) => ({ server: 0.5, postgres, rabbitmq, loadGenerator: 0.5, other: 0 });
  // Idle backends burn 0.05 + 0.05 cores. At 2,000 req/s they burn 0.5 in all (0.2 per 1k net),
  // at 500 req/s 0.3 (0.4 per 1k net): twice the cost per message, though the gross ratio is 2.4.
  const phases = {
    aBare: [phase('bare express', 10_000, cores(0.05, 0.05))],
    aDurable: [phase('wagate durable', 2_000, cores(0.3, 0.2))],
    bBare: [phase('bare express', 500, cores(0.05, 0.05))],
    bDurable: [phase('wagate durable', 500, cores(0.2, 0.1))],
  };
  expect(medianOfRoundRatios(phases.bDurable, phases.aDurable, (p) => (p.cpuCores.postgres + p.cpuCores.rabbitmq) / p.requestsPerSecond)).toBeCloseTo(2.4, 6);
  expect(medianNetBackendCostRatio(phases)).toBeCloseTo(2, 6);
  const report = formatReport({ ...summary(2), scenarioB: { bare: phases.bBare[0]!, durable: phases.bDurable[0]!, backendCostRatio: 2.4, backendCostRatioNetOfIdle: 2 } });
  expect(report).toContain('its cost at saturation: 2.40x (net of the backends\' idle CPU: 2.00x)');
  expect(report).toMatch(/backend cores per 1k req\/s, net of idle\s+-\s+0\.400/);
});

it('takes the ceiling round by round, each from its own costs and its own bare rate', () => {
  const cores = { server: 0.5, postgres: 0.25, rabbitmq: 0.25, loadGenerator: 0, other: 0 };
  // 1 core busy in every round: the ceiling on 2 cores is twice the durable rate, over that round's bare rate.
  const bare = [1_000, 4_000, 2_000].map((rps) => phase('bare express', rps, cores));
  const durable = [400, 1_000, 600].map((rps) => phase('wagate durable', rps, cores));
  const ceiling = roundCeilings(bare, durable, 2);
  // Round by round: 0.8, 0.5, 0.6. From the median phases (600 and 2,000) it would be 0.6 by chance only.
  expect(ceiling.ratio).toBeCloseTo(0.6, 6);
  expect(ceiling.requestsPerSecond).toBeCloseTo(1_200, 6);
  const withRounds = { ...summary(2), scenarioA: { ...summary(2).scenarioA, ceiling: roundCeilings(bare, [400, 1_000, 1_500].map((rps) => phase('wagate durable', rps, cores)), 2) } };
  expect(durableCeiling(withRounds).ratio).toBeCloseTo(0.8, 6);
});
