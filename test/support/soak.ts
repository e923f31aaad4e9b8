import { readFileSync } from 'node:fs';

/** What a soak run records of one process every 10 s. */
export interface ProcessFigures {
  rssBytes: number;
  heapBytes: number;
  eventLoopP99Seconds: number;
  handles: number;
}

export interface SoakSample {
  atSeconds: number;
  ingest: ProcessFigures;
  worker: ProcessFigures;
  postgresConnections: number;
}

export interface ProcessFlatness {
  heapBytesPer10Min: number;
  rssBytesPer10Min: number;
  /** Median open-handle count in the first and in the second half of the measured samples (a request in flight adds one). */
  handlesEarly: number;
  handlesLate: number;
  eventLoopP99MaxSeconds: number;
}

export interface FlatnessReport {
  measured: number;
  ingest: ProcessFlatness;
  worker: ProcessFlatness;
  postgresConnectionsEarly: number;
  postgresConnectionsLate: number;
  postgresConnectionsMax: number;
}

/** Least-squares slope of y over x. */
export function slope(points: { x: number; y: number }[]): number {
  const n = points.length;
  if (n < 2) return 0;
  const meanX = points.reduce((sum, p) => sum + p.x, 0) / n;
  const meanY = points.reduce((sum, p) => sum + p.y, 0) / n;
  const covariance = points.reduce((sum, p) => sum + (p.x - meanX) * (p.y - meanY), 0);
  const variance = points.reduce((sum, p) => sum + (p.x - meanX) ** 2, 0);
  return variance === 0 ? 0 : covariance / variance;
}

const TEN_MINUTES_S = 600;

/** Growth rates after the warm-up, and early-versus-late highs of the counts that must not grow. */
export function flatness(samples: SoakSample[], warmUpSeconds: number): FlatnessReport {
  const measured = samples.filter((s) => s.atSeconds >= warmUpSeconds);
  const half = Math.ceil(measured.length / 2);
  const early = measured.slice(0, half);
  const late = measured.slice(half);
  const max = (values: number[]) => (values.length === 0 ? 0 : Math.max(...values));
  const median = (values: number[]) => {
    const sorted = [...values].sort((a, b) => a - b);
    return sorted.length === 0 ? 0 : sorted[Math.floor((sorted.length - 1) / 2)]!;
  };
  const of = (role: 'ingest' | 'worker'): ProcessFlatness => ({
    heapBytesPer10Min: slope(measured.map((s) => ({ x: s.atSeconds, y: s[role].heapBytes }))) * TEN_MINUTES_S,
    rssBytesPer10Min: slope(measured.map((s) => ({ x: s.atSeconds, y: s[role].rssBytes }))) * TEN_MINUTES_S,
    handlesEarly: median(early.map((s) => s[role].handles)),
    handlesLate: median(late.map((s) => s[role].handles)),
    eventLoopP99MaxSeconds: max(measured.map((s) => s[role].eventLoopP99Seconds)),
  });
  return {
    measured: measured.length,
    ingest: of('ingest'),
    worker: of('worker'),
    postgresConnectionsEarly: median(early.map((s) => s.postgresConnections)),
    postgresConnectionsLate: median(late.map((s) => s.postgresConnections)),
    postgresConnectionsMax: max(measured.map((s) => s.postgresConnections)),
  };
}

const ESTABLISHED = '01';

/**
 * Established TCP connections that a process accepted on these local ports (its HTTP and
 * metrics listeners), from the kernel's tables. The clients keep idle connections open as
 * long as the server allows (65 s), so how many there are follows the clients' recent
 * concurrency, not a leak in the server: a soak judges handles without them.
 */
export function acceptedConnections(ports: number[]): number {
  const wanted = new Set(ports.map((port) => port.toString(16).toUpperCase().padStart(4, '0')));
  let count = 0;
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text = '';
    try {
      text = readFileSync(table, 'utf8');
    } catch {
      continue; // no IPv6 table on this machine
    }
    for (const line of text.split('\n').slice(1)) {
      const [, local, , state] = line.trim().split(/\s+/);
      if (state === ESTABLISHED && local && wanted.has(local.split(':')[1]!)) count += 1;
    }
  }
  return count;
}
