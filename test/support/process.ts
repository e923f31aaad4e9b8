import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { waitFor } from './wait';

export const MAIN_JS = path.join(__dirname, '..', '..', 'dist', 'main.js');

export interface ChildIngest {
  child: ChildProcess;
  baseUrl: string;
  metricsUrl: string;
  logs: Record<string, unknown>[];
  /** Resolves with the exit code. */
  exited: Promise<number | null>;
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

/** Runs `wagate <command>` from the build, as a separate process, and waits until it listens, an ingest until it has warmed up too (logging at `logLevel`, info or finer). */
export async function spawnWagate(command: string, env: Record<string, string>, timeoutMs = 20000, logLevel = 'info'): Promise<ChildIngest> {
  if (!existsSync(MAIN_JS)) throw new Error(`${MAIN_JS} is missing: run "npm run build" before these tests`);
  const child = spawn(process.execPath, [MAIN_JS, command], {
    env: { ...process.env, ...env, LOG_LEVEL: logLevel },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const logs: Record<string, unknown>[] = [];
  // 'close' rather than 'exit': it comes after the child's output has been read, so logs are complete.
  const exited = new Promise<number | null>((resolve) => child.once('close', (code) => resolve(code)));
  let hasExited = false;
  void exited.then(() => (hasExited = true));
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  let timer: NodeJS.Timeout | undefined;
  const listening = new Promise<{ port: number; metricsPort: number }>((resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`wagate ${command} did not start within ${timeoutMs} ms: ${stderr}`)), timeoutMs);
    createInterface({ input: child.stdout! }).on('line', (line) => {
      try {
        const entry = JSON.parse(line) as Record<string, unknown>;
        logs.push(entry);
        if (entry.msg === 'ingest listening' || entry.msg === 'worker started' || entry.msg === 'autoscaler started') {
          resolve({ port: (entry.port as number) ?? 0, metricsPort: entry.metricsPort as number });
        }
      } catch {
        logs.push({ line });
      }
    });
    void exited.then((code) => reject(new Error(`wagate ${command} exited with ${code}: ${stderr}`)));
  });
  let port: number;
  let metricsPort: number;
  try {
    ({ port, metricsPort } = await listening);
    // As a Service would, send to an ingest only once its warm-up (and its rehearsal's
    // connections) is over: whatever the outcome, it then logs "ingest warmed up" or "ingest warm-up …",
    // unless it stops first (a test may expect it to, as on a topology conflict found after it listens).
    if (command === 'ingest') {
      await waitFor('wagate ingest to finish its warm-up or exit', () => hasExited || logs.some((entry) => String(entry.msg).startsWith('ingest warm')), timeoutMs);
    }
  } catch (error) {
    // The caller never gets a handle on a process that did not start, so nothing else would stop it.
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await exited;
    throw error;
  } finally {
    clearTimeout(timer);
  }
  return {
    child,
    baseUrl: `http://127.0.0.1:${port}`,
    metricsUrl: `http://127.0.0.1:${metricsPort}/metrics`,
    logs,
    exited,
    async stop(signal = 'SIGTERM') {
      if (child.exitCode === null) child.kill(signal);
      return exited;
    },
  };
}

/** Runs a one-shot `wagate <args>` from the build with exactly this environment (plus PATH). */
export function runWagate(
  args: string[],
  env: Record<string, string>,
  killAfterMs?: number,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [MAIN_JS, ...args], { env: { PATH: process.env.PATH ?? '', ...env } });
    let stdout = '';
    let stderr = '';
    // A process that should have stopped by itself is killed, and the test fails on its exit
    // code, instead of timing out with the process left running.
    const timer = killAfterMs === undefined ? undefined : setTimeout(() => child.kill('SIGKILL'), killAfterMs);
    child.stdout!.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/**
 * Runs a one-shot `wagate <args>` armed at a failpoint (WAGATE_FAILPOINT) and kills it
 * (SIGKILL) once it holds there, as a crash at that step would; answers its output so far.
 */
export function runWagateKilledAt(failpoint: string, args: string[], env: Record<string, string>, timeoutMs = 60_000): Promise<{ stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [MAIN_JS, ...args], { env: { PATH: process.env.PATH ?? '', ...env, WAGATE_FAILPOINT: failpoint } });
    let stdout = '';
    let stderr = '';
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`wagate ${args.join(' ')} did not reach ${failpoint} within ${timeoutMs} ms: ${stderr}`));
    }, timeoutMs);
    child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.stdout!.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
      if (stdout.includes('"failpoint reached"')) child.kill('SIGKILL');
    });
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      if (signal === 'SIGKILL' && stdout.includes('"failpoint reached"')) resolve({ stdout, stderr });
      else reject(new Error(`wagate ${args.join(' ')} exited (${code ?? signal}) before reaching ${failpoint}: ${stderr}`));
    });
  });
}

/**
 * Runs a one-shot `wagate <args>` that pauses itself (SIGSTOP) at a failpoint, runs `whilePaused`
 * there, and lets it go on (SIGCONT); answers how it ended. For races with the step that follows.
 */
export function runWagatePausedAt(
  failpoint: string,
  args: string[],
  env: Record<string, string>,
  /** Given the stopped process's pid, to signal it. */
  whilePaused: (pid: number) => Promise<void>,
  timeoutMs = 60_000,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [MAIN_JS, ...args], {
      env: { PATH: process.env.PATH ?? '', ...env, WAGATE_FAILPOINT: failpoint, WAGATE_FAILPOINT_ACTION: 'pause' },
    });
    let stdout = '';
    let stderr = '';
    let paused = false;
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`wagate ${args.join(' ')} did not reach ${failpoint} and finish within ${timeoutMs} ms: ${stderr}`));
    }, timeoutMs);
    child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.stdout!.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
      if (paused || !stdout.includes('"failpoint reached"')) return;
      paused = true;
      // The line comes just before the process stops itself: on a busy machine a SIGCONT sent
      // before it has stopped is lost, and it would stay stopped for good.
      waitFor('the process to stop at its failpoint', () => isStopped(child.pid!)).then(() => whilePaused(child.pid!)).then(
        () => child.kill('SIGCONT'),
        (error: unknown) => {
          child.kill('SIGKILL');
          reject(error as Error);
        },
      );
    });
    child.on('exit', (code) => {
      clearTimeout(timer);
      if (!paused) reject(new Error(`wagate ${args.join(' ')} exited (${code}) before reaching ${failpoint}: ${stderr}`));
      else resolve({ code, stdout, stderr });
    });
  });
}

/** The process is stopped (SIGSTOP), by its state in /proc. */
function isStopped(pid: number): boolean {
  try {
    return readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ').at(-1)!.startsWith('T');
  } catch {
    return false;
  }
}

/** Lets a process paused at its failpoint go on, once it has really stopped (a SIGCONT sent before is lost). */
export async function resumeStopped(child: ChildProcess): Promise<void> {
  await waitFor('the process to stop at its failpoint', () => isStopped(child.pid!));
  child.kill('SIGCONT');
}
