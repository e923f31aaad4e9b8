import { spawn, type ChildProcess } from 'node:child_process';
import { accessSync, constants, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { waitFor } from './wait';
import { freePort } from './free-port';

/** Scrape and rule evaluation every second, so a test sees fresh data within a few seconds. */
const SCRAPE_INTERVAL = '1s';
const READY_TIMEOUT_MS = 20000;
const REQUEST_TIMEOUT_MS = 5000;
const STOP_TIMEOUT_MS = 5000;
/** Attempts to start, in case another process takes the free port between probe and bind. */
const START_ATTEMPTS = 3;

export interface PrometheusOptions {
  /** Scrape job name → targets as host:port; each target is scraped at /metrics. */
  jobs: Record<string, string[]>;
  /** Rule files Prometheus loads and evaluates. */
  ruleFiles?: string[];
}

export interface QueryResponse {
  status: 'success' | 'error';
  data?: { resultType: string; result: { metric: Record<string, string>; value?: [number, string] }[] };
  errorType?: string;
  error?: string;
}

export interface RuleStatus {
  name: string;
  query: string;
  type: 'alerting' | 'recording';
  health: string;
  lastError?: string;
  lastEvaluation: string;
}

export interface RunningPrometheus {
  url: string;
  /** An instant query at the current time, as the HTTP API answers it (errors included). */
  query(expr: string): Promise<QueryResponse>;
  /** Every metric name Prometheus has stored. */
  metricNames(): Promise<string[]>;
  rules(): Promise<{ name: string; file: string; rules: RuleStatus[] }[]>;
  /** Resolves once every target of every job has been scraped, and was up, count times after the call. */
  waitForScrapes(count: number, timeoutMs?: number): Promise<void>;
  stop(): Promise<void>;
}

/** A real Prometheus server on a free loopback port with its own throwaway storage. */
export async function startPrometheus(options: PrometheusOptions): Promise<RunningPrometheus> {
  const binary = findOnPath('prometheus');
  let lastError: Error | undefined;
  for (let attempt = 0; attempt < START_ATTEMPTS; attempt++) {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'wagate-prometheus-'));
    try {
      return await launch(binary, dir, await freePort(), options);
    } catch (error) {
      rmSync(dir, { recursive: true, force: true });
      lastError = error as Error;
    }
  }
  throw lastError!;
}

function findOnPath(name: string): string {
  for (const dir of (process.env.PATH ?? '').split(path.delimiter).filter(Boolean)) {
    const candidate = path.join(dir, name);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not in this directory
    }
  }
  throw new Error(`${name} not found on PATH: install the Debian package "prometheus" (apt-get install prometheus)`);
}

/** JSON is YAML, so the config needs no YAML writer. */
function writeConfig(dir: string, options: PrometheusOptions): string {
  const config = {
    global: { scrape_interval: SCRAPE_INTERVAL, scrape_timeout: SCRAPE_INTERVAL, evaluation_interval: SCRAPE_INTERVAL },
    rule_files: options.ruleFiles ?? [],
    scrape_configs: Object.entries(options.jobs).map(([job, targets]) => ({
      job_name: job,
      metrics_path: '/metrics',
      static_configs: [{ targets }],
    })),
  };
  const file = path.join(dir, 'prometheus.yml');
  writeFileSync(file, JSON.stringify(config, null, 2));
  return file;
}

async function launch(binary: string, dir: string, port: number, options: PrometheusOptions): Promise<RunningPrometheus> {
  const url = `http://127.0.0.1:${port}`;
  const child = spawn(
    binary,
    [
      `--config.file=${writeConfig(dir, options)}`,
      `--storage.tsdb.path=${path.join(dir, 'data')}`,
      `--web.listen-address=127.0.0.1:${port}`,
      '--log.level=warn',
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => {
    stderr = (stderr + chunk.toString()).slice(-4000);
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const stop = async () => {
    await terminate(child, exited);
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await waitFor(
      'prometheus to be ready',
      async () => {
        if (child.exitCode !== null) throw new Error(`prometheus exited with ${child.exitCode}: ${stderr}`);
        return (await fetch(`${url}/-/ready`, { signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) })).ok;
      },
      READY_TIMEOUT_MS,
    );
  } catch (error) {
    await terminate(child, exited);
    throw new Error(`${(error as Error).message}\n${stderr}`);
  }
  const api = createApi(url);
  return {
    url,
    ...api,
    waitForScrapes: (count, timeoutMs = 20000) => waitForScrapes(api, options.jobs, count, timeoutMs),
    stop,
  };
}

async function terminate(child: ChildProcess, exited: Promise<number | null>): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS);
  await exited;
  clearTimeout(timer);
}

function createApi(url: string) {
  const getJson = async <T>(pathAndQuery: string, init?: RequestInit): Promise<T> => {
    const response = await fetch(url + pathAndQuery, { ...init, signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) });
    return (await response.json()) as T;
  };
  return {
    query: (expr: string) =>
      getJson<QueryResponse>('/api/v1/query', {
        method: 'POST',
        headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ query: expr }).toString(),
      }),
    metricNames: async () => (await getJson<{ data: string[] }>('/api/v1/label/__name__/values')).data,
    rules: async () => (await getJson<{ data: { groups: { name: string; file: string; rules: RuleStatus[] }[] } }>('/api/v1/rules')).data.groups,
  };
}

/**
 * Counts the successful scrapes stored since the call, per target: each scrape stores one `up`
 * sample, and once it is queryable so is everything that scrape collected.
 */
async function waitForScrapes(api: ReturnType<typeof createApi>, jobs: Record<string, string[]>, count: number, timeoutMs: number): Promise<void> {
  const since = Date.now();
  let progress = '';
  try {
    await waitFor(
      `${count} scrapes of every target`,
      async () => {
        // The window starts a little after the call, so a scrape started before it never counts.
        const windowMs = Date.now() - since - 50;
        if (windowMs <= 0) return false;
        const checks = await Promise.all(
          Object.entries(jobs).map(async ([job, targets]) => {
            // up is 1 for a successful scrape and 0 for a failed one: the sum counts the successes.
            const response = await api.query(`sum_over_time(up{job="${job}"}[${windowMs}ms])`);
            const counts = (response.data?.result ?? []).map((sample) => Number(sample.value?.[1] ?? 0));
            return { job, counts, done: counts.length === targets.length && counts.every((n) => n >= count) };
          }),
        );
        progress = checks.map((check) => `${check.job}: ${JSON.stringify(check.counts)}`).join(', ');
        return checks.every((check) => check.done);
      },
      timeoutMs,
    );
  } catch (error) {
    throw new Error(`${(error as Error).message} (scrapes while up: ${progress || 'none'})`);
  }
}
