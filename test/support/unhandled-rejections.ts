import { spawn } from 'node:child_process';
import path from 'node:path';

const ROOT = path.join(__dirname, '..', '..');
const DRIVER = path.join(__dirname, 'unhandled-rejections-driver.ts');

export interface CountedRun {
  /** What the scenario returned (for first-query: 'answered' or the error's code). */
  outcome: unknown;
  /** Every unhandled rejection its process saw, as "Name: message". */
  unhandled: string[];
}

/**
 * Runs a scenario of test/support/unhandled-rejections-driver.ts in a process of its own, with
 * `env` added, and answers how it ended and which rejections went unhandled. A test cannot count
 * them in Jest's own process: the `process` a test file sees is a copy, deaf to them.
 */
export function runCountingUnhandledRejections(scenario: string, env: Record<string, string> = {}, timeoutMs = 60_000): Promise<CountedRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(path.join(ROOT, 'node_modules', '.bin', 'tsx'), [DRIVER, scenario], { cwd: ROOT, env: { ...process.env, ...env } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    // A scenario that leaves something running never reaches its report.
    const kill = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('close', (code, signal) => {
      clearTimeout(kill);
      const report = stdout.trim().split('\n').at(-1) ?? '';
      if (code !== 0 || !report.startsWith('{')) {
        reject(new Error(`scenario ${scenario} ended (${code ?? signal}) without its report: ${stdout}${stderr}`));
        return;
      }
      resolve(JSON.parse(report) as CountedRun);
    });
  });
}
