import { ITERATION_ERRORS, type CounterDefinition } from '../lib/scenario.ts';
import type { CheckTally } from '../lib/summary.ts';
import { parseMetricKey, trendValues, type MetricSummary } from '../lib/thresholds.ts';

type Tags = Record<string, string>;

/** Samples of one run, aggregated at the end into k6's summary shape, including the tagged sub-metrics thresholds name. */
export interface Recorder {
  /**
   * A scenario request, answered or not: durationMs is k6's http_req_duration (0 for a request
   * never written). ok when it got the status it expects: its check passes and http_req_failed
   * spares it, as k6's check and expected statuses judge it alike.
   */
  request(tags: Tags, check: string, durationMs: number, ok: boolean): void;
  /**
   * A request the scenario makes without checking it (the backlog's stats polls): as in k6, it
   * counts in http_reqs, http_req_duration and, when not answered as expected, http_req_failed; not in checks.
   */
  unchecked(tags: Tags, durationMs: number, failed: boolean): void;
  count(name: string, value: number): void;
  dropped(): void;
  trend(name: string, value: number): void;
  summarize(metricKeys: string[]): Record<string, MetricSummary>;
  checks(): CheckTally[];
}

export function createRecorder(counters: CounterDefinition[]): Recorder {
  const durations: { tags: Tags; ms: number }[] = [];
  const failures: { tags: Tags; failed: boolean }[] = [];
  const checks: { tags: Tags; ok: boolean }[] = [];
  const checksByName = new Map<string, CheckTally>();
  // iteration_errors from 0, as k6 shows it: every scenario's thresholds name it, and k6 keeps a
  // metric with a threshold in its summary, measured or not.
  const counts = new Map<string, number>([[ITERATION_ERRORS, 0], ...counters.map((counter) => [counter.name, 0] as const)]);
  const trends = new Map<string, number[]>();
  let dropped = 0;

  // A sub-metric such as http_req_duration{slo:ack} holds the samples carrying every tag of its filter.
  const matching = <T extends { tags: Tags }>(samples: T[], filter: Tags) =>
    samples.filter((sample) => Object.entries(filter).every(([name, value]) => sample.tags[name] === value));
  const rate = (values: boolean[]): MetricSummary => {
    const passes = values.filter(Boolean).length;
    return { type: 'rate', values: { rate: values.length === 0 ? 0 : passes / values.length, passes, fails: values.length - passes } };
  };
  const tallyCheck = (name: string, ok: boolean) => {
    const tally = checksByName.get(name) ?? { name, passes: 0, fails: 0 };
    if (ok) tally.passes += 1;
    else tally.fails += 1;
    checksByName.set(name, tally);
  };

  return {
    request(tags, check, ms, ok) {
      durations.push({ tags, ms });
      failures.push({ tags, failed: !ok });
      checks.push({ tags, ok });
      tallyCheck(check, ok);
    },
    unchecked(tags, ms, failed) {
      durations.push({ tags, ms });
      failures.push({ tags, failed });
    },
    count: (name, value) => counts.set(name, (counts.get(name) ?? 0) + value),
    dropped: () => (dropped += 1),
    trend(name, value) {
      const values = trends.get(name) ?? [];
      values.push(value);
      trends.set(name, values);
    },
    summarize(metricKeys) {
      const metrics: Record<string, MetricSummary> = {
        http_reqs: { type: 'counter', values: { count: failures.length } },
        dropped_iterations: { type: 'counter', values: { count: dropped } },
      };
      for (const [name, value] of counts) metrics[name] = { type: 'counter', values: { count: value } };
      for (const [name, values] of trends) metrics[name] = { type: 'trend', values: trendValues(values) };
      const keys = new Set(['http_req_duration', 'http_req_failed', 'checks', ...metricKeys]);
      for (const key of keys) {
        const { name, tags } = parseMetricKey(key);
        if (name === 'http_req_duration') {
          const samples = matching(durations, tags);
          if (samples.length > 0) metrics[key] = { type: 'trend', values: trendValues(samples.map((s) => s.ms)) };
        }
        if (name === 'http_req_failed') metrics[key] = rate(matching(failures, tags).map((s) => s.failed));
        if (name === 'checks') metrics[key] = rate(matching(checks, tags).map((s) => s.ok));
      }
      return metrics;
    },
    checks: () => [...checksByName.values()].map((tally) => ({ ...tally })),
  };
}
