/**
 * k6 threshold expressions ("p(99)<300", "rate<0.01", "count==0") over the values of k6's
 * end-of-test summary, so the Node runner decides a run exactly as k6 would and both print
 * the same verdicts.
 */
export type MetricType = 'trend' | 'rate' | 'counter';

/** One metric as k6's handleSummary() receives it: its aggregated values and each threshold's outcome. */
export interface MetricSummary {
  type: MetricType;
  values: Record<string, number>;
  thresholds?: Record<string, { ok: boolean }>;
}

export interface Verdict {
  /** The metric, with its tag filter when it has one: http_req_duration{slo:ack} */
  metric: string;
  threshold: string;
  ok: boolean;
  /** The value the threshold was judged on; null when the metric had no samples. */
  actual: number | null;
  aggregation: string;
  /**
   * How many samples a trend or rate was judged on, so that a tagged subset smaller than meant
   * (a tag missing from some requests) shows; null for a counter, whose count is its value.
   */
  samples: number | null;
}

interface ParsedThreshold {
  aggregation: string;
  operator: string;
  limit: number;
}

const THRESHOLD_PATTERN = /^\s*(p\(\d+(?:\.\d+)?\)|avg|min|max|med|count|rate|value)\s*(<=|>=|===|==|!=|<|>)\s*(-?\d+(?:\.\d+)?)\s*$/;

export function parseThreshold(expression: string): ParsedThreshold {
  const match = THRESHOLD_PATTERN.exec(expression);
  if (!match) throw new Error(`unsupported threshold "${expression}": use an aggregation, an operator and a number, e.g. p(99)<300`);
  return { aggregation: normalisePercentile(match[1]!), operator: match[2]!, limit: Number(match[3]) };
}

/** k6 prints p(99.0) as p(99); the summary's keys use the short form. */
function normalisePercentile(aggregation: string): string {
  const match = /^p\((\d+(?:\.\d+)?)\)$/.exec(aggregation);
  return match ? `p(${Number(match[1])})` : aggregation;
}

export function compare(actual: number, operator: string, limit: number): boolean {
  switch (operator) {
    case '<':
      return actual < limit;
    case '<=':
      return actual <= limit;
    case '>':
      return actual > limit;
    case '>=':
      return actual >= limit;
    case '!=':
      return actual !== limit;
    default:
      return actual === limit;
  }
}

/** A metric key "name{tag:value,…}" split into its name and tag filter. */
export function parseMetricKey(key: string): { name: string; tags: Record<string, string> } {
  const match = /^([^{]+)(?:\{(.*)\})?$/.exec(key);
  const tags: Record<string, string> = {};
  for (const pair of (match?.[2] ?? '').split(',').filter(Boolean)) {
    const at = pair.indexOf(':');
    tags[pair.slice(0, at).trim()] = pair.slice(at + 1).trim();
  }
  return { name: match?.[1] ?? key, tags };
}

/**
 * Verdicts for every threshold. A metric that got no sample passes (as in k6) and says so;
 * when k6 already judged a threshold, its own outcome is kept.
 */
export function judge(thresholds: Record<string, string[]>, metrics: Record<string, MetricSummary | undefined>): Verdict[] {
  return Object.entries(thresholds).flatMap(([metric, expressions]) =>
    expressions.map((threshold) => {
      const { aggregation, operator, limit } = parseThreshold(threshold);
      const summary = metrics[metric];
      const samples = summary ? sampleCount(summary) : 0;
      const actual = summary && samples !== 0 ? summary.values[aggregation] : undefined;
      const judged = summary?.thresholds?.[threshold]?.ok;
      // Measured, yet without the figure the threshold names (a percentile the summary does not
      // compute): failed, where passing would say "no samples" over thousands of them.
      const uncomputed = actual === undefined && summary !== undefined && samples !== 0 && samples !== null;
      const ok = judged ?? (uncomputed ? false : actual === undefined ? true : compare(actual, operator, limit));
      return { metric, threshold, ok, actual: actual ?? null, aggregation, samples };
    }),
  );
}

/**
 * Samples behind a trend or rate, null when unknown or a counter. k6 keeps a metric that has a
 * threshold in the summary even when nothing was measured, and gives an empty trend's
 * percentiles as 0: an empty sub-metric (the SLO's with FLOOD_SHARE=1) would read as a
 * measured 0 ms. A counter's 0 is a real count.
 */
function sampleCount(summary: MetricSummary): number | null {
  const { values } = summary;
  if (summary.type === 'trend') return values.count ?? null;
  if (summary.type === 'rate') return values.passes === undefined ? null : values.passes + (values.fails ?? 0);
  return null;
}

/** What k6 shows for a trend with summaryTrendStats as the scripts set it. */
export const TREND_STATS = ['avg', 'min', 'med', 'max', 'p(90)', 'p(95)', 'p(99)', 'count'];

/** k6's percentile: linear interpolation between the closest ranks. */
export function percentile(sorted: ArrayLike<number>, p: number): number {
  if (sorted.length === 0) return NaN;
  const rank = (sorted.length - 1) * (p / 100);
  const low = Math.floor(rank);
  const high = Math.ceil(rank);
  return sorted[low]! + (sorted[high]! - sorted[low]!) * (rank - low);
}

export function trendValues(samples: number[]): Record<string, number> {
  const sorted = Float64Array.from(samples).sort();
  const sum = samples.reduce((total, value) => total + value, 0);
  return {
    avg: sum / sorted.length,
    min: sorted[0]!,
    med: percentile(sorted, 50),
    max: sorted[sorted.length - 1]!,
    'p(90)': percentile(sorted, 90),
    'p(95)': percentile(sorted, 95),
    'p(99)': percentile(sorted, 99),
    count: sorted.length,
  };
}
