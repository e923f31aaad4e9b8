/** The ingest's own view of where a request's time goes, read from its Prometheus endpoint (the parser also reads the worker's). */
const HISTOGRAMS = {
  ledgerBatchItems: 'wagate_ledger_batch_items',
  ledgerCommitSeconds: 'wagate_ledger_commit_duration_seconds',
  publishSeconds: 'wagate_publish_duration_seconds',
  ackSeconds: 'wagate_webhook_ack_duration_seconds',
  /** prom-client's default metric: every garbage collection's pause, all kinds together. */
  gcSeconds: 'wagate_nodejs_gc_duration_seconds',
} as const;

type HistogramName = keyof typeof HISTOGRAMS;

export interface Histogram {
  /** Cumulative counts by upper bound, in exposition order (ascending, ending with +Inf). */
  buckets: [number, number][];
  sum: number;
  count: number;
}

export type MetricsSnapshot = Record<HistogramName, Histogram> & {
  /** The longest event-loop delay since the previous scrape (prom-client resets it at each scrape). */
  loopLagMaxSeconds: number;
};

export interface HistogramSummary {
  count: number;
  mean: number;
  /** Estimated like PromQL's histogram_quantile: linear within the bucket. */
  p50: number;
  p99: number;
}

export async function scrapeIngestMetrics(url: string): Promise<MetricsSnapshot> {
  const text = await (await fetch(url)).text();
  const entries = Object.entries(HISTOGRAMS).map(([key, name]) => [key, parseHistogram(text, name)]);
  const lag = /^wagate_nodejs_eventloop_lag_max_seconds(?:\{[^}]*\})? (\S+)$/m.exec(text);
  return { ...(Object.fromEntries(entries) as Record<HistogramName, Histogram>), loopLagMaxSeconds: lag ? Number(lag[1]) : NaN };
}

/** What happened between two scrapes; histograms are cumulative, so the difference is the phase. */
export type IngestInternals = Record<HistogramName, HistogramSummary>;

export function summarizeBetween(before: MetricsSnapshot, after: MetricsSnapshot): IngestInternals {
  const keys = Object.keys(HISTOGRAMS) as HistogramName[];
  return Object.fromEntries(keys.map((key) => [key, summarize(subtract(after[key], before[key]))])) as IngestInternals;
}

/** Sums every series of the histogram (labels other than le are added together). */
export function parseHistogram(text: string, name: string): Histogram {
  const buckets = new Map<number, number>();
  let sum = 0;
  let count = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const value = Number(line.slice(line.lastIndexOf(' ') + 1));
    const rest = line.slice(name.length);
    if (rest.startsWith('_bucket')) {
      const le = /le="([^"]+)"/.exec(rest)![1]!;
      const bound = le === '+Inf' ? Infinity : Number(le);
      buckets.set(bound, (buckets.get(bound) ?? 0) + value);
    } else if (rest.startsWith('_sum')) sum += value;
    else if (rest.startsWith('_count')) count += value;
  }
  return { buckets: [...buckets.entries()].sort((a, b) => a[0] - b[0]), sum, count };
}

function subtract(after: Histogram, before: Histogram): Histogram {
  const earlier = new Map(before.buckets);
  return {
    buckets: after.buckets.map(([bound, cumulative]) => [bound, cumulative - (earlier.get(bound) ?? 0)]),
    sum: after.sum - before.sum,
    count: after.count - before.count,
  };
}

/** Observations of at least `bound` seconds (a bucket bound) between two scrapes of a histogram. */
export function countAtLeast(before: Histogram, after: Histogram, bound: number): number {
  const below = (histogram: Histogram) => histogram.buckets.find(([le]) => le === bound)?.[1] ?? 0;
  return after.count - before.count - (below(after) - below(before));
}

export function summarize(histogram: Histogram): HistogramSummary {
  return {
    count: histogram.count,
    mean: histogram.count === 0 ? NaN : histogram.sum / histogram.count,
    p50: quantile(histogram, 0.5),
    p99: quantile(histogram, 0.99),
  };
}

function quantile(histogram: Histogram, q: number): number {
  if (histogram.count === 0) return NaN;
  const rank = q * histogram.count;
  let lowerBound = 0;
  let lowerCount = 0;
  for (const [bound, cumulative] of histogram.buckets) {
    if (cumulative >= rank) {
      // Past the last finite bucket there is nothing to interpolate towards.
      if (bound === Infinity) return lowerBound;
      return lowerBound + ((bound - lowerBound) * (rank - lowerCount)) / Math.max(1, cumulative - lowerCount);
    }
    lowerBound = bound;
    lowerCount = cumulative;
  }
  return lowerBound;
}
