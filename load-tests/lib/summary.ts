import { ITERATION_ERRORS, type ArrivalLoad } from './scenario.ts';
import { judge, type MetricSummary, type Verdict } from './thresholds.ts';

/** The JSON summary both k6's handleSummary() and the Node runner write, and what they print. */
export interface LoadSummary {
  scenario: string;
  description: string;
  runId: string;
  /** "k6" or "node": both time http_req_duration as k6 does; the Node runner adds latency_from_due_ms. */
  runner: 'k6' | 'node';
  baseUrl: string;
  load: ArrivalLoad;
  requests: number;
  droppedIterations: number;
  /** The scenario's own counters: duplicate copies sent, forged requests accepted, … */
  counters: Record<string, number>;
  verdicts: Verdict[];
  /** Every threshold passed. An interrupted run judges only what it ran. */
  ok: boolean;
  /** Each check by name, in the order first seen, as k6's root group lists them. */
  checks: CheckTally[];
  /** The signal that stopped the Node runner early (k6's handleSummary is not told). */
  interrupted?: string;
  metrics: Record<string, MetricSummary>;
}

export interface CheckTally {
  name: string;
  passes: number;
  fails: number;
}


export interface SummaryInput extends Pick<LoadSummary, 'scenario' | 'description' | 'runId' | 'runner' | 'baseUrl' | 'load' | 'checks' | 'interrupted'> {
  thresholds: Record<string, string[]>;
  counterNames: string[];
  metrics: Record<string, MetricSummary>;
}

export function buildSummary(input: SummaryInput): LoadSummary {
  const verdicts = judge(input.thresholds, input.metrics);
  const count = (name: string) => input.metrics[name]?.values.count ?? 0;
  return {
    scenario: input.scenario,
    description: input.description,
    runId: input.runId,
    runner: input.runner,
    baseUrl: input.baseUrl,
    load: input.load,
    requests: count('http_reqs'),
    droppedIterations: count('dropped_iterations'),
    counters: Object.fromEntries(input.counterNames.map((name) => [name, count(name)])),
    verdicts,
    ok: verdicts.every((verdict) => verdict.ok),
    checks: input.checks,
    ...(input.interrupted === undefined ? {} : { interrupted: input.interrupted }),
    metrics: input.metrics,
  };
}

export function describeLoad(load: ArrivalLoad): string {
  if (load.executor === 'constant-arrival-rate') return `${load.rate}/s for ${load.durationSeconds}s (constant arrival rate)`;
  const stages = load.stages.map((stage) => `${stage.target}/s over ${stage.durationSeconds}s`).join(', then ');
  return `from ${load.startRate}/s: ${stages} (ramping arrival rate)`;
}

function formatActual(verdict: Verdict): string {
  if (verdict.actual === null) return verdict.samples ? `${verdict.aggregation} not computed over ${verdict.samples} samples` : 'no samples';
  const isTime = verdict.metric.startsWith('http_req_duration') || verdict.metric.endsWith('_ms');
  const samples = verdict.samples === null ? '' : ` (${verdict.samples} samples)`;
  if (verdict.aggregation === 'rate') return `rate=${(verdict.actual * 100).toFixed(2)}%${samples}`;
  return `${verdict.aggregation}=${isTime ? `${verdict.actual.toFixed(2)}ms` : String(verdict.actual)}${samples}`;
}

/** What went wrong beside the thresholds: script errors, and the checks that failed by name. */
function troubleLines(summary: LoadSummary): string[] {
  const lines: string[] = [];
  const errors = summary.metrics[ITERATION_ERRORS]?.values.count ?? 0;
  if (errors > 0) lines.push(`  iterations that threw (script errors): ${errors}`);
  const failed = summary.checks.filter((check) => check.fails > 0);
  if (failed.length > 0) lines.push(`  failed checks: ${failed.map((check) => `${check.name} ${check.fails} of ${check.passes + check.fails}`).join(', ')}`);
  if (summary.interrupted !== undefined) lines.push(`  interrupted by ${summary.interrupted}: the verdicts judge only what ran`);
  return lines;
}

/** The text both runners print: what ran, what was sent, and each threshold's verdict. */
export function formatSummary(summary: LoadSummary): string {
  const failed = summary.metrics.http_req_failed?.values;
  const lines = [
    `scenario ${summary.scenario} (run ${summary.runId}, ${summary.runner}): ${summary.description}`,
    `  load: ${describeLoad(summary.load)} against ${summary.baseUrl}`,
    `  requests: ${summary.requests}, not answered as expected: ${failed?.passes ?? 0}, dropped iterations: ${summary.droppedIterations}`,
  ];
  const drained = summary.metrics.backlog_drain_seconds?.values.max;
  if (drained !== undefined) lines.push(`  backlog drained in ${drained.toFixed(1)} s, from the last poll that saw all of it`);
  const counters = Object.entries(summary.counters);
  if (counters.length > 0) lines.push(`  counters: ${counters.map(([name, value]) => `${name}=${value}`).join(', ')}`);
  lines.push(...troubleLines(summary));
  lines.push('  thresholds:');
  for (const verdict of summary.verdicts) {
    lines.push(`    ${verdict.ok ? '✓' : '✗'} ${verdict.metric} ${verdict.threshold}  ${formatActual(verdict)}`);
  }
  const failedCount = summary.verdicts.filter((verdict) => !verdict.ok).length;
  lines.push(failedCount === 0 ? '  verdict: every threshold passed' : `  verdict: ${failedCount} threshold(s) FAILED`);
  return lines.join('\n') + '\n';
}
