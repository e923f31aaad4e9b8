import { spawn } from 'node:child_process';
import { createTestDatabase, type TestDatabase } from '../support/database';
import { startTestIngest, testEnv, type TestIngest } from '../support/ingest';
import { scrapeValue } from '../support/metrics';
import { TEST_AMQP_URL } from '../support/amqp';
import { MAIN_JS } from '../support/process';
import { waitFor } from '../support/wait';

let db: TestDatabase;
let ingest: TestIngest | undefined;
const wrongPassword = new URL(TEST_AMQP_URL);
wrongPassword.password = 'not-the-password';

beforeAll(async () => {
  db = await createTestDatabase();
});

afterAll(async () => {
  await ingest?.stop();
  await db.drop();
});

describe('wrong broker credentials', () => {
  it('make a worker exit 1 after AUTH_FAILURE_EXIT_SECONDS, saying the AMQP_URL login is wrong', async () => {
    const child = spawn(process.execPath, [MAIN_JS, 'worker'], {
      env: { PATH: process.env.PATH ?? '', ...testEnv(db.url, { AMQP_URL: wrongPassword.toString(), AUTH_FAILURE_EXIT_SECONDS: '2' }) },
    });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
    expect(code).toBe(1);
    expect(stderr).toMatch(/refused this worker's login for 2 s: the user or password in AMQP_URL \(or AMQP_URL_FILE\) is wrong/);
    expect(stderr).not.toContain('not-the-password');
  }, 60_000);

  it('make wagate dev exit 1 as well, rather than say it is ready while its worker consumes nothing', async () => {
    // Its ingest answers 200 from the outbox, so the README's demo would wait on orders that never come.
    const child = spawn(process.execPath, [MAIN_JS, 'dev'], {
      env: { PATH: process.env.PATH ?? '', ...testEnv(db.url, { AMQP_URL: wrongPassword.toString(), AUTH_FAILURE_EXIT_SECONDS: '2', PORT: '0', METRICS_PORT: '0' }) },
    });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
    expect(code).toBe(1);
    expect(stderr).toMatch(/wagate dev: failed: the broker at .* has refused this worker's login for 2 s: the user or password in AMQP_URL \(or AMQP_URL_FILE\) is wrong; correct it and start wagate dev again/);
    expect(stderr).not.toContain('not-the-password');
  }, 60_000);

  it('leave ingest serving from the outbox, reporting the refusal in /readyz and a metric', async () => {
    ingest = await startTestIngest(db.url, { AMQP_URL: wrongPassword.toString() });
    const live = ingest;
    await waitFor('the refusal to show in the metric', async () => (await scrapeValue(live.metricsUrl, 'wagate_broker_login_refused')) === 1, 30_000);
    const ready = await fetch(`${live.baseUrl}/readyz`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toMatchObject({ status: 'ready', broker: 'login refused: check AMQP_URL credentials' });
  });
});
