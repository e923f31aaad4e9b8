import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { COMMAND_USAGE } from '../../src/commands/usage';
import { topologyNames } from '../../src/queue/topology';
import { startFakeProvider, type FakeProvider } from '../../src/dev/fake-provider';
import { deleteTopology } from '../support/amqp';
import { createTestDatabase, type TestDatabase } from '../support/database';
import { randomQueuePrefix, META_SECRET } from '../support/ingest';
import { TEST_AMQP_URL } from '../support/amqp';
import { waitFor } from '../support/wait';
import { postMetaText, uniqueWamid } from '../support/webhooks';
import { makeReadOnly, parseDockerfile, replayStage, topLevelEntries } from './dockerfile';
import { ROOT } from './helm';

/** The image's numeric user; when the tests run as root, the processes run as it too. */
const IMAGE_UID = 10001;
const ACCESS_TOKEN = 'image-test-graph-token';
/** Far above a start on a busy machine (seconds), so only a process that will never say it started reaches it. */
const START_TIMEOUT_MS = 60_000;

const stages = parseDockerfile(readFileSync(path.join(ROOT, 'Dockerfile'), 'utf8'));
const runtime = stages.at(-1)!;
const build = stages.find((stage) => stage.name === 'build')!;

interface Started {
  child: ChildProcess;
  port: number;
  metricsPort: number;
  stop(): Promise<void>;
}

describe('the Dockerfile', () => {
  it('builds with npm ci and npm run build, and ships production dependencies (patched), dist/, migrations/ and reply-texts/ only', () => {
    expect(stages.map((s) => s.name)).toEqual(['build', 'runtime']);
    expect(build.instructions.filter((i) => i.op === 'RUN').map((i) => i.args.replace(/--mount=\S+\s*/g, ''))).toEqual(['npm ci --no-audit --no-fund', 'npm run build']);
    expect(runtime.instructions.filter((i) => i.op === 'RUN').map((i) => i.args.replace(/--mount=\S+\s*/g, ''))).toEqual(['npm ci --omit=dev --no-audit --no-fund']);
    expect(runtime.user).toBe(`${IMAGE_UID}:${IMAGE_UID}`);
    expect(runtime.env.NODE_ENV).toBe('production');
    // Collections sized for a pod's memory limit; the replayed image below runs with it, so a
    // flag that Node refuses in NODE_OPTIONS fails those tests.
    expect(runtime.env.NODE_OPTIONS).toBe('--max-semi-space-size=16');
    expect(runtime.instructions).toContainEqual({ op: 'ENTRYPOINT', args: '["node", "dist/main.js"]' });
    const dockerfile = readFileSync(path.join(ROOT, 'Dockerfile'), 'utf8');
    const nodeVersion = /NODE_VERSION=["']?([\d.]+)/.exec(readFileSync(path.join(ROOT, 'scripts', 'node.sh'), 'utf8'))?.[1];
    expect(dockerfile).toContain(`ARG NODE_IMAGE=node:${nodeVersion}-slim`);
    expect(dockerfile).toMatch(/@sha256:<digest>/);
  });

  it('runs every command the docs give through `kubectl exec` with the image\'s own entry point, since no wagate is on its PATH', () => {
    const docs = ['README.md', ...readdirSync(path.join(ROOT, 'docs')).filter((file) => file.endsWith('.md')).map((file) => path.join('docs', file)), 'charts/wagate/templates/NOTES.txt'];
    const commands = docs.flatMap((file) =>
      readFileSync(path.join(ROOT, file), 'utf8')
        .split('\n')
        .flatMap((line) => [...line.matchAll(/kubectl [^`]*?\bexec [^`]*? -- (\S+) ?(\S*) ?(\S*)/g)])
        .map(([, program, script, subcommand]) => ({ file, program, script, subcommand })),
    );
    expect(commands.length).toBeGreaterThanOrEqual(5);
    const known = new Set(Object.keys(COMMAND_USAGE));
    const wrong = commands.filter(({ program, script, subcommand }) => program !== 'node' || (script !== '-e' && (script !== 'dist/main.js' || !known.has(subcommand!))));
    expect(wrong).toEqual([]);
  });

  it('keeps everything but the build inputs out of the context', () => {
    expect(readFileSync(path.join(ROOT, '.dockerignore'), 'utf8').split('\n').filter((l) => l && !l.startsWith('#'))).toEqual([
      '*', '!package.json', '!package-lock.json', '!patches/', '!tsconfig.json', '!tsconfig.build.json', '!src/', '!migrations/', '!reply-texts/',
    ]);
  });
});

describe('the final stage, replayed into a read-only folder', () => {
  let dir: string;
  let app: string;
  let nodeBinary: string;
  let db: TestDatabase;
  let fake: FakeProvider;
  const prefix = randomQueuePrefix();
  const running: Started[] = [];

  beforeAll(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'wagate-image-'));
    chmodSync(dir, 0o755); // mkdtemp makes it private to this user
    app = path.join(dir, 'app');
    const env = { ...process.env, PATH: `${path.dirname(process.execPath)}:${process.env.PATH}`, NODE_ENV: runtime.env.NODE_ENV };
    replayStage(runtime, build, ROOT, app, env);
    // The base image brings node; a copy beside the folder, so the image's user can run it.
    nodeBinary = path.join(dir, 'node');
    copyFileSync(process.execPath, nodeBinary);
    makeReadOnly(dir);
    db = await createTestDatabase({ migrate: false });
    fake = await startFakeProvider({ metaAccessToken: ACCESS_TOKEN });
  }, 600_000);

  afterAll(async () => {
    await Promise.all(running.map((process) => process.stop()));
    await fake?.close();
    await deleteTopology(topologyNames({ prefix, deliveryLimit: 5, retryDelaysMs: [5000, 30000, 300000, 1800000], shards: 32 }));
    await db?.drop();
    if (dir) {
      spawnSync('chmod', ['-R', 'u+w', dir]);
      rmSync(dir, { recursive: true, force: true });
    }
  });

  const runAs = () => (process.getuid?.() === 0 ? { uid: IMAGE_UID, gid: IMAGE_UID } : {});
  const imageEnv = (extra: Record<string, string> = {}) => ({
    PATH: '/usr/bin:/bin',
    ...runtime.env,
    DATABASE_URL: db.url,
    AMQP_URL: TEST_AMQP_URL,
    QUEUE_PREFIX: prefix,
    WORK_SHARDS: '32',
    HOST: '127.0.0.1',
    PORT: '0',
    METRICS_PORT: '0',
    LOG_LEVEL: 'info',
    WHATSAPP_APP_SECRET: META_SECRET,
    WHATSAPP_ACCESS_TOKEN: ACCESS_TOKEN,
    WHATSAPP_GRAPH_API_URL: fake.url,
    ...extra,
  });

  /** `node dist/main.js <command>` from the folder, as the image's ENTRYPOINT runs it. */
  function start(command: string): Promise<Started> {
    const child = spawn(nodeBinary, ['dist/main.js', command], { cwd: app, env: imageEnv(), stdio: ['ignore', 'pipe', 'pipe'], ...runAs() });
    let stderr = '';
    child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    // Registered at once, so afterAll stops it even when it never says it started.
    const started = { child, port: 0, metricsPort: 0, stop: async () => void (child.exitCode === null && child.kill('SIGTERM'), await exited) };
    running.push(started);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        reject(new Error(`wagate ${command} did not start within ${START_TIMEOUT_MS} ms: ${stderr}`));
      }, START_TIMEOUT_MS);
      child.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`wagate ${command} exited with ${code}: ${stderr}`));
      });
      createInterface({ input: child.stdout! }).on('line', (line) => {
        // A line that is not a log entry is not the start entry either; a throw here would escape the test.
        let entry: { msg?: string; port?: number; metricsPort?: number };
        try {
          entry = JSON.parse(line) as typeof entry;
        } catch {
          return;
        }
        if (entry.msg !== 'ingest listening' && entry.msg !== 'worker started') return;
        clearTimeout(timer);
        resolve(Object.assign(started, { port: entry.port ?? 0, metricsPort: entry.metricsPort ?? 0 }));
      });
    });
  }

  it('holds production dependencies only, patched, and nothing is writable by the image\'s user', () => {
    expect(topLevelEntries(app)).toEqual(['dist', 'migrations', 'node_modules', 'package-lock.json', 'package.json', 'patches', 'reply-texts']);
    // npm ci's postinstall applied patches/ to the image's own dependencies.
    expect(readFileSync(path.join(app, 'node_modules', 'postgres', 'cjs', 'src', 'connection.js'), 'utf8')).toContain('fetchArrayTypes().catch(');
    expect(readFileSync(path.join(app, 'node_modules', 'amqplib', 'lib', 'mux.js'), 'utf8')).toContain('out.cork();');
    for (const devOnly of ['typescript', 'jest', 'ts-jest', 'tsx', 'autocannon']) expect([devOnly, existsSync(path.join(app, 'node_modules', devOnly))]).toEqual([devOnly, false]);
    expect(existsSync(path.join(app, 'node_modules', 'express'))).toBe(true);
    const write = spawnSync(nodeBinary, ['-e', `require('fs').writeFileSync(${JSON.stringify(path.join(app, 'probe'))}, 'x')`], { ...runAs() });
    expect(write.status).not.toBe(0);
    expect(write.stderr.toString()).toMatch(/EACCES|EROFS|EPERM/);
  });

  it('migrates, then runs ingest and worker, which take a signed webhook through to the provider reply', async () => {
    const migrate = spawnSync(nodeBinary, ['dist/main.js', 'migrate'], { cwd: app, env: imageEnv(), ...runAs(), encoding: 'utf8', timeout: 120_000 });
    expect([migrate.error, migrate.status, migrate.stderr]).toEqual([undefined, 0, '']);
    const [ingest, worker] = [await start('ingest'), await start('worker')];
    await waitFor('the worker to be ready', async () => ((await fetch(`http://127.0.0.1:${worker.metricsPort}/readyz`)).status === 200 ? true : undefined), 30_000);
    // The ingest is ready once it has warmed up (pool, ledger statement, a rehearsal of the webhook path).
    await waitFor('the ingest to be ready', async () => ((await fetch(`http://127.0.0.1:${ingest.port}/readyz`)).status === 200 ? true : undefined), 30_000);
    const id = uniqueWamid();
    expect((await postMetaText(`http://127.0.0.1:${ingest.port}`, { id, text: 'hello' })).status).toBe(200);
    const [call] = await fake.waitForCalls(1, 60_000);
    expect(call?.path).toMatch(/messages$/);
    const status = await waitFor('the message to be finished', async () => {
      const [row] = await db.sql<{ status: string }[]>`SELECT status FROM webhook_messages WHERE message_id = ${id}`;
      return row && !['queued', 'processing'].includes(row.status) ? row.status : undefined;
    }, 60_000);
    expect(status).not.toBe('dead');
  }, 180_000);
});


