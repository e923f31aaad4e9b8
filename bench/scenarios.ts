import type { Sql } from '../src/db/client';
import { waitForOutboxDrain } from './checks';
import { scrapeIngestMetrics, summarizeBetween, type IngestInternals } from './ingest-metrics';
import { runClosedLoop, runPaced, type LatencySummary, type LoadResult } from './load';
import type { MessageSource } from './messages';
import { measureCpu, sampleRss, type CpuShare } from './probes';
import type { ServerProcess } from './servers';

export interface ScenarioSettings {
  a: { connections: number; warmupSeconds: number; seconds: number };
  b: { rate: number; warmupSeconds: number; seconds: number };
}

export function scenarioSettings(measuredSeconds: number): ScenarioSettings {
  return {
    a: { connections: 64, warmupSeconds: 2, seconds: measuredSeconds },
    b: { rate: 500, warmupSeconds: 2, seconds: measuredSeconds },
  };
}

export interface PhaseResult {
  server: string;
  requestsPerSecond: number;
  ok: number;
  non2xx: number;
  errors: number;
  latencyMs: LatencySummary;
  peakRssMib: number;
  cpuCores: CpuShare;
  /** Durable side only: what the ingest itself saw, and how long the outbox took to empty afterwards. */
  ingest?: IngestInternals;
  outboxDrainMs?: number | null;
}

export interface PhaseContext {
  settings: ScenarioSettings;
  source: MessageSource;
  sql: Sql;
  /** Every id a server acknowledged on the durable path, for the checks at the end. */
  ackedIds: string[];
}

/** Each scenario starts with a warm-up, so the JIT, the pools and Postgres's caches settle; only its ids are kept. */
export async function runScenarioA(server: ServerProcess, context: PhaseContext): Promise<PhaseResult> {
  const { connections, warmupSeconds, seconds } = context.settings.a;
  keepAcked(server, context, await runClosedLoop(server.webhookUrl, context.source, connections, warmupSeconds));
  return measure(server, context, () => runClosedLoop(server.webhookUrl, context.source, connections, seconds));
}

export async function runScenarioB(server: ServerProcess, context: PhaseContext): Promise<PhaseResult> {
  const { rate, warmupSeconds, seconds } = context.settings.b;
  keepAcked(server, context, await runPaced(server.webhookUrl, context.source, rate, warmupSeconds));
  return measure(server, context, () => runPaced(server.webhookUrl, context.source, rate, seconds));
}

async function measure(server: ServerProcess, context: PhaseContext, load: () => Promise<LoadResult>): Promise<PhaseResult> {
  const metricsBefore = server.metricsUrl ? await scrapeIngestMetrics(server.metricsUrl) : null;
  const rss = sampleRss(server.pid);
  const cpu = measureCpu(server.pid);
  const result = await load();
  const cpuCores = cpu.stop();
  const peakRssMib = rss.stop();
  keepAcked(server, context, result);
  const phase: PhaseResult = {
    server: server.name,
    requestsPerSecond: result.requestsPerSecond,
    ok: result.ok,
    non2xx: result.non2xx,
    errors: result.errors,
    latencyMs: result.latencyMs,
    peakRssMib,
    cpuCores,
  };
  if (!server.metricsUrl || !metricsBefore) return phase;
  phase.outboxDrainMs = await waitForOutboxDrain(context.sql);
  phase.ingest = summarizeBetween(metricsBefore, await scrapeIngestMetrics(server.metricsUrl));
  return phase;
}

function keepAcked(server: ServerProcess, context: PhaseContext, result: LoadResult): void {
  if (server.durable) for (const id of result.ackedIds) context.ackedIds.push(id);
}
