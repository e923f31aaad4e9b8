import type { CounterDefinition } from '../lib/scenario.ts';
import { parseMetricKey, trendValues, type MetricSummary } from '../lib/thresholds.ts';

type Tags = Record<string, string>;

/** Samples of one run, aggregated at the end into k6's summary shape, including the tagged sub-metrics thresholds name. */
export interface Recorder {
  answer(tags: Tags, durationMs: number, ok: boolean): void;
  /** As in k6, a request without an answer still has a duration: the whole wait, up to the timeout. */
  noAnswer(tags: Tags, durationMs: number): void;
  /**
   * A request the scenario makes without checking it (the backlog's stats polls): as in k6, it
   * counts in http_reqs, http_req_duration and http_req_failed (status 0 or 400 and up), not in checks.
   */
  unchecked(tags: Tags, durationMs: number, status: number): void;
  count(name: string, value: number): void;
  dropped(): void;
  trend(name: string, value: number): void;
  summarize(metricKeys: string[]): Record<string, MetricSummary>;
}

export function createRecorder(counters: CounterDefinition[]): Recorder {
  const durations: { tags: Tags; ms: number }[] = [];
  const failures: { tags: Tags; failed: boolean }[] = [];
  const checks: { tags: Tags; ok: boolean }[] = [];
  const counts = new Map<string, number>(counters.map((counter) => [counter.name, 0]));
  const trends = new Map<string, number[]>();
  let dropped = 0;

  const matching = <T extends { tags: Tags }>(samples: T[], filter: Tags) =>
    samples.filter((sample) => Object.entries(filter).every(([name, value]) => sample.tags[name] === value));
  const rate = (values: boolean[]): MetricSummary => {
    const passes = values.filter(Boolean).length;
    return { type: 'rate', values: { rate: values.length === 0 ? 0 : passes / values.length, passes, fails: values.length - passes } };
  };

  return {
    // A scenario's request fails http_req_failed and its check together: both compare the status with the one it expects.
    answer(tags, ms, ok) {
      durations.push({ tags, ms });
      failures.push({ tags, failed: !ok });
      checks.push({ tags, ok });
    },
    noAnswer(tags, ms) {
      durations.push({ tags, ms });
      failures.push({ tags, failed: true });
      checks.push({ tags, ok: false });
    },
    unchecked(tags, ms, status) {
      durations.push({ tags, ms });
      failures.push({ tags, failed: status === 0 || status >= 400 });
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
  };
}
