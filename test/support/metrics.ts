/**
 * The value of one series in a Prometheus exposition: the line whose name matches and whose
 * labels include every one given (the role label, for instance, may be left out). Counters
 * only grow during a test file, so tests compare a value before and after what they do.
 */
export function seriesValue(exposition: string, name: string, labels: Record<string, string> = {}): number {
  for (const line of exposition.split('\n')) {
    const match = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!match || match[1] !== name) continue;
    const present = Object.fromEntries([...(match[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((label) => [label[1], label[2]]));
    if (Object.entries(labels).every(([key, value]) => present[key] === value)) return Number(match[3]);
  }
  return 0;
}

/** Scrapes a /metrics URL and reads one series from it. */
export async function scrapeValue(metricsUrl: string, name: string, labels: Record<string, string> = {}): Promise<number> {
  return seriesValue(await (await fetch(metricsUrl)).text(), name, labels);
}
