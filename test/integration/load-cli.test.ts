import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { loadEnv } from '../support/load';
import { PUBLIC_BASE_URL } from '../support/pipeline';
import { useIngestSuite } from '../support/ingest';
import { waitFor } from '../support/wait';

const ROOT = path.join(__dirname, '..', '..');
/**
 * As `npm run load` runs it: tsx as a loader in the runner's own process. tsx's CLI runs the
 * script in a child and, when the child had not reported a signal within 30 ms (a busy
 * machine), signalled it again and then killed it: the second SIGINT cut the summary short.
 */
const LOAD_SCRIPT = ['--import', 'tsx', 'load-tests/runner/main.ts'];
const CLI_TIMEOUT_MS = 60_000;

/** `npm run load -- <args>`, as its script runs it, with the environment it reads; output so far, and the exit. */
function startLoadCommand(args: string[], env: Record<string, string | undefined>) {
  const child = spawn(process.execPath, [...LOAD_SCRIPT, ...args], {
    cwd: ROOT,
    env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const output = { stdout: '', stderr: '' };
  child.stdout.on('data', (chunk: Buffer) => (output.stdout += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (output.stderr += chunk.toString()));
  const exited = new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => child.once('exit', (code) => resolve({ code, ...output })));
  return { child, output, exited };
}

function runLoadCommand(args: string[], env: Record<string, string | undefined>) {
  return startLoadCommand(args, env).exited;
}

describe('npm run load -- <scenario>', () => {
  it('is run as the tests run it', () => {
    const { scripts } = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> };
    expect(scripts.load).toBe(`node ${LOAD_SCRIPT.join(' ')}`);
  });

  // The gateway's PUBLIC_BASE_URL is the one the runner signs Twilio requests over.
  const suite = useIngestSuite({ PUBLIC_BASE_URL });
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'wagate-load-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('prints every verdict, writes the JSON summary and exits 0 when every threshold passes', async () => {
    const summaryPath = path.join(dir, 'forged.json');
    const { code, stdout, stderr } = await runLoadCommand(['forged-signatures'], { ...loadEnv(suite.ingest.baseUrl), DURATION: '1s', RATE: '40', SUMMARY_PATH: summaryPath });
    expect(stderr).toBe('');
    expect(code).toBe(0);
    expect(stdout).toContain('✓ forged_accepted count==0  count=0');
    expect(stdout).toContain('✓ http_req_failed rate<0.01  rate=0.00%');
    expect(stdout).toContain('verdict: every threshold passed');
    const summary = JSON.parse(readFileSync(summaryPath, 'utf8'));
    expect(summary).toMatchObject({ scenario: 'forged-signatures', runner: 'node', ok: true, requests: 40, counters: { forged_accepted: 0 } });
    expect(JSON.stringify(summary)).not.toContain(loadEnv('').WHATSAPP_APP_SECRET);
  }, CLI_TIMEOUT_MS);

  it('refuses, before any load, a SUMMARY_PATH whose folder is missing, where k6 would lose the summary after the run', async () => {
    const summaryPath = path.join(dir, 'missing', 'forged.json');
    const { code, stdout, stderr } = await runLoadCommand(['forged-signatures'], { ...loadEnv(suite.ingest.baseUrl), DURATION: '1s', RATE: '40', SUMMARY_PATH: summaryPath });
    expect(code).toBe(2);
    expect(stderr).toContain(`the folder ${path.join(dir, 'missing')} does not exist; create it first`);
    expect(stdout).not.toContain('run ');
  }, CLI_TIMEOUT_MS);

  it('exits 1 and marks the threshold that failed', async () => {
    const env = { ...loadEnv(suite.ingest.baseUrl), DURATION: '1s', RATE: '20', ACK_P99_MS: '0.001', SUMMARY_PATH: path.join(dir, 'failed.json') };
    const { code, stdout } = await runLoadCommand(['meta-constant'], env);
    expect(code).toBe(1);
    expect(stdout).toMatch(/✗ http_req_duration\{webhook:yes\} p\(99\)<0\.001 {2}p\(99\)=[\d.]+ms/);
    expect(stdout).toContain('verdict: 1 threshold(s) FAILED');
  }, CLI_TIMEOUT_MS);

  it('prints the run id at the start, and on SIGINT stops the load, prints the verdicts, writes the JSON and exits 130', async () => {
    const summaryPath = path.join(dir, 'interrupted.json');
    const run = startLoadCommand(['meta-constant'], { ...loadEnv(suite.ingest.baseUrl), DURATION: '60s', RATE: '20', SUMMARY_PATH: summaryPath });
    const runId = await waitFor('the run id line', () => /^run ([0-9a-f]{8}): message ids contain it/m.exec(run.output.stdout)?.[1], CLI_TIMEOUT_MS / 2);
    run.child.kill('SIGINT');
    const { code, stdout, stderr } = await run.exited;
    expect(stderr).toBe('');
    expect(code).toBe(130);
    expect(stdout).toContain(`scenario meta-constant (run ${runId}, node)`);
    expect(stdout).toContain('interrupted by SIGINT: the verdicts judge only what ran');
    expect(stdout).toMatch(/[✓✗] http_req_failed rate<0\.01/);
    const summary = JSON.parse(readFileSync(summaryPath, 'utf8'));
    expect(summary).toMatchObject({ scenario: 'meta-constant', runId, interrupted: 'SIGINT' });
    // 1200 were due over the minute.
    expect(summary.requests).toBeLessThan(1200);
  }, CLI_TIMEOUT_MS);

  it('exits 2 before any load for a ramp too short to start an iteration, which would pass every threshold having sent nothing', async () => {
    const { code, stdout, stderr } = await runLoadCommand(['mixed-ramping'], { ...loadEnv(suite.ingest.baseUrl), DURATION: '1s', RATE: '1', SUMMARY_PATH: path.join(dir, 'empty.json') });
    expect(code).toBe(2);
    expect(stderr).toContain('RATE and DURATION give this load no iteration to start, so it would send nothing and pass every threshold: raise RATE or DURATION');
    expect(stdout).toBe('');
  }, CLI_TIMEOUT_MS);

  it('exits 2 with what to correct, and no stack, when the stats endpoint refuses ADMIN_TOKEN before the backlog\'s load', async () => {
    const { code, stdout, stderr } = await runLoadCommand(['backlog'], { ...loadEnv(suite.ingest.baseUrl), ADMIN_TOKEN: 'not-the-gateways', SUMMARY_PATH: path.join(dir, 'refused.json') });
    expect(code).toBe(2);
    expect(stderr).toBe('the run could not start: the stats endpoint answered 401: is ADMIN_TOKEN the gateway\'s?\n');
    expect(stdout).not.toContain('run ');
  }, CLI_TIMEOUT_MS);

  it('exits 2 with the scenarios listed for an unknown one', async () => {
    const unknown = await runLoadCommand(['meta-constnt'], loadEnv(suite.ingest.baseUrl));
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain('unknown scenario "meta-constnt"');
    expect(unknown.stderr).toContain('scenarios: meta-constant, twilio-constant, mixed-ramping, duplicate-storm, forged-signatures, sender-flood, backlog, soak');
  }, CLI_TIMEOUT_MS);
});
