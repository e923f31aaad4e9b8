import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { createInterface } from 'node:readline';
import ts from 'typescript';
import { parse as parseYaml } from 'yaml';
import { createMemoryLimitedGroup, type CpuLimitedGroup, type MemoryLimitedGroup } from './cgroup';
import { META_WEBHOOK_PATH } from '../src/webhooks/meta';

const ROOT = path.join(__dirname, '..');
const START_TIMEOUT_MS = 20_000;

export interface ServerProcess {
  name: string;
  /** True for wagate: its acknowledgements must be backed by rows, and it has an outbox. */
  durable: boolean;
  pid: number;
  webhookUrl: string;
  /** The ingest's Prometheus endpoint; absent for the bare server. */
  metricsUrl?: string;
  stop(): Promise<void>;
  /** True once the process has ended, whoever ended it. */
  exited(): boolean;
}

/**
 * The baseline runs as plain JavaScript, like wagate's dist build: a TypeScript loader in
 * its process would add memory (about 6 to 35 MB) that the durable side does not carry.
 */
export async function startBareServer(options: { memoryLimited?: boolean } = {}): Promise<ServerProcess> {
  const source = readFileSync(path.join(__dirname, 'bare-server.ts'), 'utf8');
  const { outputText } = ts.transpileModule(source, {
    compilerOptions: { module: ts.ModuleKind.CommonJS, target: ts.ScriptTarget.ES2022, esModuleInterop: true },
  });
  const dir = path.join(ROOT, '.bench');
  mkdirSync(dir, { recursive: true });
  const file = path.join(dir, 'bare-server.js');
  writeFileSync(file, outputText);
  const pod = asPod(options.memoryLimited ?? false);
  const env = { PORT: '0', HOST: '127.0.0.1', NODE_ENV: 'production', WEBHOOK_PATH: META_WEBHOOK_PATH, ...pod.env };
  const child = spawnNode([file], env, pod);
  const port = await firstLine(child, /^listening (\d+)$/).catch(killAndRethrow(child));
  return describe('bare express', false, child, `http://127.0.0.1:${port}${META_WEBHOOK_PATH}`);
}

export interface IngestSettings {
  databaseUrl: string;
  amqpUrl: string;
  queuePrefix: string;
  appSecret: string;
  workShards: number;
  /** Settings beyond the defaults, e.g. ACK_AFTER=publish; named in the server's name. */
  extraEnv?: Record<string, string>;
  /** Run under BENCH_SERVER_MEMORY_MIB, as in a pod (the ingest and system parts' servers). */
  memoryLimited?: boolean;
}

/** The real thing: `node dist/main.js ingest`, ready once Postgres answers and the broker is connected. */
export async function startIngestServer(settings: IngestSettings): Promise<ServerProcess> {
  const [port, metricsPort] = [await freePort(), await freePort()];
  const pod = asPod(settings.memoryLimited ?? false);
  const child = spawnNode([...nodeFlags('BENCH_INGEST_FLAGS'), path.join(ROOT, 'dist', 'main.js'), 'ingest'], {
    NODE_ENV: 'production',
    HOST: '127.0.0.1',
    PORT: String(port),
    METRICS_PORT: String(metricsPort),
    DATABASE_URL: settings.databaseUrl,
    AMQP_URL: settings.amqpUrl,
    QUEUE_PREFIX: settings.queuePrefix,
    WORK_SHARDS: String(settings.workShards),
    WHATSAPP_APP_SECRET: settings.appSecret,
    LOG_LEVEL: 'warn',
    // 1000 senders share the whole run; the flood must not be rate limited or it measures a shortcut.
    RATE_LIMIT_MAX_REQUESTS: '1000000000',
    ...pod.env,
    ...settings.extraEnv,
  }, pod);
  // wagate logs to stdout; at LOG_LEVEL=warn anything it says during the run matters.
  child.stdout!.pipe(process.stderr);
  const base = `http://127.0.0.1:${port}`;
  await waitUntilReady(child, `${base}/readyz`).catch(killAndRethrow(child));
  const extra = Object.entries(settings.extraEnv ?? {}).map(([name, value]) => `${name}=${value}`);
  const name = extra.length > 0 ? `wagate durable, ${extra.join(' ')}` : 'wagate durable';
  return { ...describe(name, true, child, `${base}${META_WEBHOOK_PATH}`), metricsUrl: `http://127.0.0.1:${metricsPort}/metrics` };
}

/**
 * BENCH_INGEST_FLAGS, BENCH_WORKER_FLAGS: node flags for the ingest or the worker processes only,
 * e.g. --cpu-prof or --trace-gc when looking for a cost.
 */
function nodeFlags(variable: 'BENCH_INGEST_FLAGS' | 'BENCH_WORKER_FLAGS'): string[] {
  return (process.env[variable] ?? '').split(' ').filter(Boolean);
}

export interface WorkerSettings {
  databaseUrl: string;
  amqpUrl: string;
  queuePrefix: string;
  /** Base URL of the fake Graph API. */
  graphApiUrl: string;
  accessToken: string;
  prefetch: number;
  /** WORKER_MESSAGES_IN_HAND: spread over the worker's shards, it raises each one's prefetch. */
  messagesInHand: number;
  workShards: number;
  /** More settings for this worker, e.g. a shorter heartbeat. */
  env?: Record<string, string>;
  /** Run under BENCH_SERVER_MEMORY_MIB, as in a pod (the worker and system parts' workers). */
  memoryLimited?: boolean;
  /** A CPU limit, as a pod's: the process joins the group before node starts. */
  cpuGroup?: CpuLimitedGroup;
}

export interface WorkerProcess {
  pid: number;
  /** performance.now() when the process was spawned. */
  spawnedAt: number;
  /** Resolves with performance.now() when the worker logs 'worker started'. */
  started: Promise<number>;
  /** Wall-clock time (the worker's own log timestamp, epoch ms) of each line logged so far, by message; first one wins. */
  loggedAt: Map<string, number>;
  metricsUrl: string;
  stop(): Promise<void>;
  exited(): boolean;
}

/**
 * `node dist/main.js worker`, as deployed. It logs at info so that its start-up lines can be
 * timed (the worker logs nothing per message at info); warnings and errors are passed on.
 */
export async function startWorkerProcess(settings: WorkerSettings): Promise<WorkerProcess> {
  const metricsPort = await freePort();
  const spawnedAt = performance.now();
  const pod = asPod(settings.memoryLimited ?? false, 'worker', settings.cpuGroup);
  const child = spawnNode([...nodeFlags('BENCH_WORKER_FLAGS'), path.join(ROOT, 'dist', 'main.js'), 'worker'], {
    NODE_ENV: 'production',
    HOST: '127.0.0.1',
    METRICS_PORT: String(metricsPort),
    DATABASE_URL: settings.databaseUrl,
    AMQP_URL: settings.amqpUrl,
    QUEUE_PREFIX: settings.queuePrefix,
    WHATSAPP_GRAPH_API_URL: settings.graphApiUrl,
    WHATSAPP_ACCESS_TOKEN: settings.accessToken,
    WORKER_PREFETCH: String(settings.prefetch),
    WORKER_MESSAGES_IN_HAND: String(settings.messagesInHand),
    WORK_SHARDS: String(settings.workShards),
    LOG_LEVEL: 'info',
    ...pod.env,
    ...settings.env,
  }, pod);
  const loggedAt = new Map<string, number>();
  const started = new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`wagate worker did not start within ${START_TIMEOUT_MS} ms`)), START_TIMEOUT_MS);
    child.once('exit', (code) => reject(new Error(`wagate worker exited with ${code}`)));
    createInterface({ input: child.stdout! }).on('line', (line) => {
      const entry = parseLogLine(line);
      if (entry?.msg && typeof entry.time === 'number' && !loggedAt.has(entry.msg)) loggedAt.set(entry.msg, entry.time);
      if (entry?.msg === 'worker started') {
        clearTimeout(timer);
        resolve(performance.now());
      }
      if (!entry || (entry.level ?? 0) >= WARN_LEVEL) process.stderr.write(`${line}\n`);
    });
  });
  // Nobody may be waiting yet when it fails; the caller sees the rejection when it awaits.
  started.catch(() => undefined);
  const { stop, exited } = describe('wagate worker', false, child, '');
  return { pid: child.pid!, spawnedAt, started, loggedAt, metricsUrl: `http://127.0.0.1:${metricsPort}/metrics`, stop, exited };
}

/** pino's numeric level for warn. */
const WARN_LEVEL = 40;

function parseLogLine(line: string): { level?: number; time?: number; msg?: string } | null {
  try {
    return JSON.parse(line) as { level?: number; time?: number; msg?: string };
  } catch {
    return null;
  }
}

function spawnNode(args: string[], env: Record<string, string>, pod: Pod = { env: {}, memory: null, joins: [] }): ChildProcess {
  const options = { cwd: ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] as ('ignore' | 'pipe')[] };
  // A memory limit must hold from the first instruction, when Node sizes its heap, and a CPU
  // limit from the first thread: a shell joins the groups, then execs node in its place (same pid).
  const join = 'n=$1; shift; while [ "$n" -gt 0 ]; do echo $$ > "$1" || exit 97; shift; n=$((n - 1)); done; exec "$@"';
  const child = pod.joins.length > 0
    ? spawn('/bin/sh', ['-c', join, 'sh', String(pod.joins.length), ...pod.joins, process.execPath, ...args], options)
    : spawn(process.execPath, args, options);
  const { memory } = pod;
  if (memory) child.once('exit', () => memory.remove());
  // Warnings and errors stay visible; a child that dies mid-run must not go unnoticed.
  child.stderr!.pipe(process.stderr);
  return child;
}

/**
 * BENCH_SERVER_MEMORY_MIB (default 512, the chart's limit for ingest and worker pods; 0 for
 * none): the memory limit of the servers of the ingest, ack, worker, scale, hostile and system parts, so that their
 * heaps are sized as in a pod. They then also run with the NODE_OPTIONS their pod would have:
 * the image's, or for a worker the chart's worker.nodeOptions.
 */
// A negative value means none, as 0 does; the reports then show 0.
export const SERVER_MEMORY_MIB = Math.max(Number(process.env.BENCH_SERVER_MEMORY_MIB ?? 512), 0);
let memoryGroups = 0;

/** NODE_OPTIONS as the Dockerfile's runtime stage sets it. */
function imageNodeOptions(): string {
  const dockerfile = readFileSync(path.join(ROOT, 'Dockerfile'), 'utf8');
  const runtime = dockerfile.slice(dockerfile.lastIndexOf('\nFROM '));
  return /^ENV NODE_OPTIONS=(\S+)/m.exec(runtime)?.[1] ?? '';
}

/** NODE_OPTIONS of a worker pod: the chart's worker.nodeOptions, or the image's when that is empty. */
function workerNodeOptions(): string {
  const values = parseYaml(readFileSync(path.join(ROOT, 'charts', 'wagate', 'values.yaml'), 'utf8')) as { worker?: { nodeOptions?: string } };
  return values.worker?.nodeOptions || imageNodeOptions();
}

/** How a server starts as a pod would: in its memory cgroup, with its pod's NODE_OPTIONS. */
interface Pod {
  env: Record<string, string>;
  memory: MemoryLimitedGroup | null;
  /** The cgroup.procs files the process joins before node starts. */
  joins: string[];
}

function asPod(limited: boolean, role: 'ingest' | 'worker' = 'ingest', cpu?: CpuLimitedGroup): Pod {
  const cpuJoin = cpu ? [cpu.procsFile] : [];
  if (!limited || SERVER_MEMORY_MIB <= 0) return { env: {}, memory: null, joins: cpuJoin };
  const memory = createMemoryLimitedGroup(`wagate-bench-${process.pid}-${++memoryGroups}`, SERVER_MEMORY_MIB, cpu);
  if (!memory) throw new Error(`no writable memory cgroup controller: run as root, or set BENCH_SERVER_MEMORY_MIB=0 to run the servers without a memory limit`);
  // One group under cgroup v2 (the CPU group carries the memory limit); one per hierarchy under v1.
  const joins = [...new Set([memory.procsFile, ...cpuJoin])];
  return { env: { NODE_OPTIONS: role === 'worker' ? workerNodeOptions() : imageNodeOptions() }, memory, joins };
}

/** A child that failed to start is not yet in the caller's cleanup list, so it goes here. */
function killAndRethrow(child: ChildProcess) {
  return (error: unknown): never => {
    child.kill('SIGKILL');
    throw error;
  };
}

function describe(name: string, durable: boolean, child: ChildProcess, webhookUrl: string): ServerProcess {
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  return {
    name,
    durable,
    pid: child.pid!,
    webhookUrl,
    exited: () => child.exitCode !== null || child.signalCode !== null,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(timer);
    },
  };
}

function firstLine(child: ChildProcess, pattern: RegExp): Promise<string> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server did not start within ${START_TIMEOUT_MS} ms`)), START_TIMEOUT_MS);
    child.once('exit', (code) => reject(new Error(`server exited with ${code} before listening`)));
    createInterface({ input: child.stdout! }).on('line', (line) => {
      const match = pattern.exec(line);
      if (!match) return;
      clearTimeout(timer);
      resolve(match[1]!);
    });
  });
}

/** Polls /readyz; with LOG_LEVEL=warn the ingest prints nothing when it starts listening. */
async function waitUntilReady(child: ChildProcess, url: string): Promise<void> {
  const deadline = Date.now() + START_TIMEOUT_MS;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`wagate ingest exited with ${child.exitCode}`);
    const body = await fetch(url).then((res) => (res.ok ? (res.json() as Promise<{ broker?: string }>) : null), () => null);
    if (body?.broker === 'connected') return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`wagate ingest was not ready with a broker within ${START_TIMEOUT_MS} ms`);
}

/** A port the OS just handed out; the ingest binds it a moment later. */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = net.createServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const address = probe.address() as net.AddressInfo;
      probe.close(() => resolve(address.port));
    });
  });
}
