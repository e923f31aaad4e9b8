import { spawn } from 'node:child_process';
import path from 'node:path';
import { createTestDatabase } from '../support/database';
import { randomQueuePrefix, testEnv } from '../support/ingest';
import { MAIN_JS } from '../support/process';

/** Bounds a run whose stdout reader has gone: far past a normal exit (an ingest's start included, on a starved CPU), far below a hang. */
const EXIT_WITHIN_MS = 60_000;

/** Runs node with `args`, its stdout's reader closed at once; resolves with its exit code and stderr. */
function runWithStdoutClosed(args: string[], env: Record<string, string> = {}): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NODE_ENV: 'test', ...env } });
    child.stdout.destroy();
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const hung = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`still running ${EXIT_WITHIN_MS} ms after its stdout closed; stderr: ${stderr.slice(0, 500)}`));
    }, EXIT_WITHIN_MS);
    child.once('exit', (code) => {
      clearTimeout(hung);
      resolve({ code, stderr });
    });
  });
}

describe('a process whose stdout reader has gone', () => {
  it('exits with its own status after logging, instead of retrying the write for ever at exit', async () => {
    const logger = path.join(path.dirname(MAIN_JS), 'telemetry', 'logger.js');
    const script = `const log = require(${JSON.stringify(logger)}).createLogger('info', 'wagate-test');
      setTimeout(() => { for (let i = 0; i < 2000; i += 1) log.info({ i }, 'a line nobody reads'); log.flush(); process.exit(3); }, 200);`;
    expect((await runWithStdoutClosed(['-e', script])).code).toBe(3);
  });

  it('stops a service that only logs, as SIGPIPE would, rather than running on unheard', async () => {
    const db = await createTestDatabase();
    try {
      const env = { ...testEnv(db.url, { QUEUE_PREFIX: randomQueuePrefix(), PORT: '0', METRICS_PORT: '0', HOST: '127.0.0.1' }), LOG_LEVEL: 'info' };
      const { code, stderr } = await runWithStdoutClosed([MAIN_JS, 'ingest'], env);
      expect(stderr).not.toContain('EPIPE');
      expect(code).toBe(0);
    } finally {
      await db.drop();
    }
  }, EXIT_WITHIN_MS + 30_000);

  it('stops a service gracefully, without an EPIPE crash', async () => {
    const { code, stderr } = await runWithStdoutClosed([MAIN_JS, 'fake-provider', '--port', '0']);
    expect(stderr).not.toContain('EPIPE');
    expect(code).toBe(0);
  }, EXIT_WITHIN_MS + 10_000);
});
