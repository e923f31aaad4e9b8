import { spawn, spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { parse as parseYaml } from 'yaml';
import { countBacklog } from '../../src/autoscaler/backlog';
import {
  LEASE,
  NAMESPACE,
  WORKER,
  lastDecision,
  leaseState,
  metricValue,
  prepareAutoscalerAccess,
  recreateWorker,
  startAutoscaler,
  workerEvents,
  workerState,
} from '../support/autoscaler';
import { startControlPlane, type ControlPlane } from '../support/control-plane';
import { createTestDatabase, type TestDatabase } from '../support/database';
import { startJudgingProxy } from '../support/judging-proxy';
import { startProxyFor, startTcpProxy, type TcpProxy } from '../support/tcp-proxy';
import { startPipeline } from '../support/pipeline';
import { startPrometheus } from '../support/prometheus';
import type { ChildIngest } from '../support/process';
import { waitFor } from '../support/wait';
import { postMetaText } from '../support/webhooks';

const ROOT = path.join(__dirname, '..', '..');
/** Generous bounds: the control plane, Postgres and RabbitMQ share two busy cores. */
const SETTLE_MS = 45_000;
/** The chart's terminationGracePeriodSeconds for the autoscaler. */
const AUTOSCALER_GRACE_MS = 30_000;
const CHART_FILES = path.join(ROOT, 'charts', 'wagate', 'files');
/**
 * The default lease periods, for tests about the Lease itself: a renewal that a busy API server
 * holds up for a few seconds does not hand it over, as it would with FAST_AUTOSCALER_ENV's 3/2/1 s.
 */
const DEFAULT_LEASE_ENV = {
  AUTOSCALER_LEASE_DURATION_SECONDS: '15',
  AUTOSCALER_RENEW_DEADLINE_SECONDS: '10',
  AUTOSCALER_RETRY_PERIOD_SECONDS: '2',
};

/** The dashboard's autoscaler row (refIds AS…) and the WagateAutoscalerNoLeader expression. */
function autoscalerQueries(): { dashboard: { ref: string; expr: string }[]; noLeader: string } {
  interface Panel {
    targets?: { refId: string; expr: string }[];
    panels?: Panel[];
  }
  const flatten = (list: Panel[]): Panel[] => list.flatMap((panel) => [panel, ...flatten(panel.panels ?? [])]);
  const dashboard = JSON.parse(readFileSync(path.join(CHART_FILES, 'dashboard.json'), 'utf8')) as { panels: Panel[] };
  const targets = flatten(dashboard.panels).flatMap((panel) => panel.targets ?? []).filter((target) => target.refId.startsWith('AS'));
  const rules = parseYaml(readFileSync(path.join(CHART_FILES, 'alerts.yaml'), 'utf8')) as { groups: { rules: { alert: string; expr: string }[] }[] };
  const noLeader = rules.groups.flatMap((group) => group.rules).find((rule) => rule.alert === 'WagateAutoscalerNoLeader')!;
  return { dashboard: targets.map((target) => ({ ref: target.refId, expr: target.expr.replace(/\$__rate_interval/g, '1m').replace(/\$namespace\b/g, '.*') })), noLeader: noLeader.expr };
}

/**
 * `wagate autoscaler` as a process, authenticated only by the token of a ServiceAccount bound to
 * the least-privilege Role in test/fixtures/kube/autoscaler-rbac.yaml, against a real
 * kube-apiserver with its deployment controller, and a real Postgres (and RabbitMQ, where the
 * backlog comes from real webhooks).
 */
describe('wagate autoscaler on a real Kubernetes API server', () => {
  let plane: ControlPlane;
  let kubeconfig: string;
  let db: TestDatabase;
  const running: ChildIngest[] = [];

  const start = async (identity: string, env: Record<string, string> = {}, databaseUrl = db.url) => {
    const autoscaler = await startAutoscaler(kubeconfig, { DATABASE_URL: databaseUrl, AUTOSCALER_IDENTITY: identity, ...env });
    running.push(autoscaler);
    return autoscaler;
  };
  const metric = (process: ChildIngest, name: string, labels = '') => metricValue(process.metricsUrl, name, labels);
  /** A kubeconfig (KUBECONFIG.<suffix>) that reaches the API server through a TCP proxy the test can silence. */
  const throughProxy = async (suffix: string, work: (proxiedKubeconfig: string, proxy: TcpProxy) => Promise<void>) => {
    const apiServer = new URL(/server: (\S+)/.exec(readFileSync(kubeconfig, 'utf8'))![1]!);
    const proxy = await startTcpProxy(Number(apiServer.port), apiServer.hostname);
    try {
      const proxied = `${kubeconfig}.${suffix}`;
      writeFileSync(proxied, readFileSync(kubeconfig, 'utf8').replace(apiServer.host, `127.0.0.1:${proxy.port}`));
      await work(proxied, proxy);
    } finally {
      proxy.setMode('forward');
      await proxy.close();
    }
  };
  /** One worker and an autoscaler that adopted it, then recorded the pause annotated on it. */
  const pausedOnRecord = async () => {
    recreateWorker(plane, 1);
    const autoscaler = await start('autoscaler-a', { AUTOSCALER_SCALE_DOWN_STABILIZATION_SECONDS: '0' });
    await waitFor('the autoscaler to adopt the Deployment', () => lastDecision(plane)?.reason === 'adopted_first_run', SETTLE_MS);
    plane.kubectl(['annotate', 'deployment', WORKER, '-n', NAMESPACE, 'wagate.io/autoscaler-paused=true']);
    await waitFor('the pause on record', () => lastDecision(plane)?.reason === 'paused', SETTLE_MS);
    return autoscaler;
  };
  const decisions = async (process: ChildIngest, reason: string) => (await metric(process, 'wagate_autoscaler_decisions_total', `reason="${reason}"`)) ?? 0;

  beforeAll(async () => {
    plane = await startControlPlane();
    kubeconfig = prepareAutoscalerAccess(plane);
    db = await createTestDatabase();
  }, 180_000);

  afterEach(async () => {
    await Promise.all(running.splice(0).map((process) => process.stop('SIGKILL')));
    plane.kubectl(['delete', 'lease', LEASE, '-n', NAMESPACE, '--ignore-not-found']);
  });

  afterAll(async () => {
    await db?.drop();
    await plane?.stop();
  }, 60_000);

  it('can do nothing beyond the fixture Role: no other Deployment or Lease, no deletes, no secrets or pods', () => {
    const can = (...args: string[]) =>
      spawnSync(path.join(plane.binDir, 'kubectl'), ['auth', 'can-i', ...args, '-n', NAMESPACE], {
        env: { ...process.env, ...plane.env, KUBECONFIG: kubeconfig },
        encoding: 'utf8',
      }).stdout.trim();
    expect(can('patch', `deployments/${WORKER}`)).toBe('yes');
    expect(can('patch', `deployments/${WORKER}`, '--subresource=scale')).toBe('no');
    expect(can('create', 'leases')).toBe('yes');
    expect(can('update', `leases/${LEASE}`)).toBe('yes');
    expect(can('update', 'leases/another-controller')).toBe('no');
    expect(can('get', 'leases/another-controller')).toBe('no');
    expect(can('create', 'events')).toBe('yes');
    expect(can('patch', 'deployments/wagate-ingest')).toBe('no');
    expect(can('patch', 'deployments/wagate-ingest', '--subresource=scale')).toBe('no');
    expect(can('delete', `deployments/${WORKER}`)).toBe('no');
    expect(can('update', `deployments/${WORKER}`)).toBe('no');
    expect(can('list', 'deployments')).toBe('no');
    expect(can('delete', 'leases')).toBe('no');
    expect(can('get', 'secrets')).toBe('no');
    expect(can('list', 'pods')).toBe('no');
  });

  it('acquires the Lease and renews it; a standby takes over when the leader dies; the leader releases it on SIGTERM', async () => {
    recreateWorker(plane, 1);
    const a = await start('autoscaler-a', DEFAULT_LEASE_ENV);
    await waitFor('autoscaler-a to hold the Lease', () => leaseState(plane)?.holder === 'autoscaler-a', SETTLE_MS);
    await waitFor('autoscaler-a to report itself leader', async () => (await metric(a, 'wagate_autoscaler_leader')) === 1, SETTLE_MS);
    const firstRenew = leaseState(plane)!.renewTime;
    await waitFor('the leader to renew the Lease', () => leaseState(plane)!.renewTime !== firstRenew, SETTLE_MS);

    const b = await start('autoscaler-b', DEFAULT_LEASE_ENV);
    // Every renewTime seen while a holds it; a poll that misses one only waits for the next.
    const renewals = new Set([leaseState(plane)!.renewTime]);
    await waitFor('two more renewals by the leader while b stands by', () => {
      const lease = leaseState(plane)!;
      if (lease.holder === 'autoscaler-a') renewals.add(lease.renewTime);
      return renewals.size >= 3;
    }, SETTLE_MS);
    expect(leaseState(plane)!.holder).toBe('autoscaler-a');
    expect(await metric(b, 'wagate_autoscaler_leader')).toBe(0);
    expect(await decisions(b, 'steady')).toBe(0);

    await a.stop('SIGKILL');
    await waitFor('the standby to take the Lease over', () => leaseState(plane)?.holder === 'autoscaler-b', SETTLE_MS);
    expect(leaseState(plane)!.transitions).toBe(1);
    await waitFor('the new leader to act', async () => (await decisions(b, 'steady')) > 0, SETTLE_MS);

    expect(await b.stop('SIGTERM')).toBe(0);
    const released = leaseState(plane)!;
    expect(released.holder).toBeUndefined();
    expect(released.durationSeconds).toBe(1);
  }, 120_000);

  it('hands the Lease to a standby once the leader has not reached Postgres for a lease duration, and campaigns again once it does', async () => {
    recreateWorker(plane, 1);
    const { proxy, url } = await startProxyFor(db.url, 5432);
    try {
      const a = await start('autoscaler-a', DEFAULT_LEASE_ENV, url);
      await waitFor('autoscaler-a to hold the Lease', () => leaseState(plane)?.holder === 'autoscaler-a', SETTLE_MS);
      const b = await start('autoscaler-b', DEFAULT_LEASE_ENV);
      // Postgres goes away for the leader alone: its pool's connections are reset and new ones refused.
      proxy.setMode('refuse');
      await waitFor('the standby to take the Lease over', () => leaseState(plane)?.holder === 'autoscaler-b', 60_000);
      // Waited for, not read at once: the line may still be in the pipe from autoscaler-a when
      // the poll (a synchronous kubectl) sees the standby holding the Lease a moment after it.
      await waitFor('autoscaler-a to say it handed the Lease back', () =>
        a.logs.some((entry) => String(entry.msg).startsWith('handing the Lease back: this autoscaler has not reached Postgres')), SETTLE_MS);
      expect(await metric(a, 'wagate_autoscaler_leader')).toBe(0);
      await waitFor('the new leader to act', async () => (await decisions(b, 'steady')) > 0, SETTLE_MS);

      proxy.setMode('forward');
      expect(await b.stop('SIGTERM')).toBe(0);
      await waitFor('autoscaler-a, reaching Postgres again, to take the released Lease', () => leaseState(plane)?.holder === 'autoscaler-a', SETTLE_MS);
    } finally {
      proxy.setMode('forward');
      await proxy.close();
    }
  }, 150_000);

  it('times a renewal it read late from when the answer came, so a standby never takes the Lease before a lease duration after it saw the last renewal', async () => {
    recreateWorker(plane, 1);
    // A lease long enough that the standby's held read outlasts several of the leader's renewals
    // within its own renew deadline.
    const env = { AUTOSCALER_LEASE_DURATION_SECONDS: '20', AUTOSCALER_RENEW_DEADLINE_SECONDS: '15', AUTOSCALER_RETRY_PERIOD_SECONDS: '2' };
    const a = await start('autoscaler-a', env);
    await waitFor('autoscaler-a to hold the Lease', () => leaseState(plane)?.holder === 'autoscaler-a', SETTLE_MS);
    let holding = false;
    const apiServer = new URL(/server: (\S+)/.exec(readFileSync(kubeconfig, 'utf8'))![1]!);
    // What b sends is held while `holding`: its read of the Lease reaches the API server late,
    // as behind an overloaded server, and is answered with what the Lease is by then.
    const proxy = await startJudgingProxy(apiServer, 443, { fromClient: () => (holding ? 'hold' : 'pass') });
    try {
      const proxied = `${kubeconfig}.late-read`;
      writeFileSync(proxied, readFileSync(kubeconfig, 'utf8').replace(apiServer.host, `127.0.0.1:${proxy.port}`));
      const b = await startAutoscaler(proxied, { DATABASE_URL: db.url, AUTOSCALER_IDENTITY: 'autoscaler-b', ...env });
      running.push(b);
      await waitFor('autoscaler-b to reach the Lease and stand by', async () => {
        const readiness = (await (await fetch(b.metricsUrl.replace(/\/metrics$/, '/readyz'))).json()) as { kubernetes: string; leader: boolean };
        return readiness.kubernetes === 'ok' && !readiness.leader;
      }, SETTLE_MS);
      holding = true;
      await waitFor('a read of autoscaler-b to be held', () => proxy.held() > 0, SETTLE_MS);
      // The leader renews four times while the read waits: 6 s at least, within b's 15 s deadline.
      const renewals = new Set<string | undefined>([leaseState(plane)!.renewTime]);
      await waitFor('four renewals by the leader while the read waits', () => {
        renewals.add(leaseState(plane)!.renewTime);
        return renewals.size >= 5;
      }, SETTLE_MS);
      await a.stop('SIGKILL');
      const answeredAt = performance.now();
      holding = false;
      proxy.release();
      await waitFor('the standby to take the Lease over', () => leaseState(plane)?.holder === 'autoscaler-b', 60_000);
      // b saw the last renewal no earlier than the release; timed from the start of its try (the
      // fault), it took the Lease over 6 s or more too early.
      expect(performance.now() - answeredAt).toBeGreaterThanOrEqual(20_000);
    } finally {
      await proxy.close();
    }
  }, 150_000);

  it('stops within its pod\'s grace period while the API server does not answer', async () => {
    recreateWorker(plane, 1);
    await throughProxy('proxied', async (proxied, proxy) => {
      // The default lease periods: the renew deadline is one of the waits a stop may meet.
      const autoscaler = await startAutoscaler(proxied, { DATABASE_URL: db.url, AUTOSCALER_IDENTITY: 'autoscaler-hung', ...DEFAULT_LEASE_ENV });
      running.push(autoscaler);
      await waitFor('it to lead and act', async () => (await decisions(autoscaler, 'steady')) > 0, SETTLE_MS);
      // Open connections stay open and go silent, as with a hung API server or a black-holed network.
      proxy.setMode('blackhole');
      const started = performance.now();
      autoscaler.child.kill('SIGTERM');
      expect(await autoscaler.exited).toBe(0);
      expect(performance.now() - started).toBeLessThan(AUTOSCALER_GRACE_MS);
    });
  }, 120_000);

  it('gives up a call to a silent API server when its tick is aborted (its deadline passed, or its leadership ended)', async () => {
    recreateWorker(plane, 1);
    await throughProxy('silent', async (proxied, proxy) => {
      proxy.setMode('blackhole');
      const result = await new Promise<{ status: number | null; stdout: string; stderr: string }>((resolve) => {
        const child = spawn(path.join(ROOT, 'node_modules', '.bin', 'tsx'), [path.join(__dirname, 'drivers', 'abort-hung-call.ts'), NAMESPACE, WORKER], {
          cwd: ROOT,
          env: { ...process.env, KUBECONFIG: proxied },
        });
        let stdout = '';
        let stderr = '';
        child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
        child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
        // Without the abort, the first call waits on the silent server for good.
        const kill = setTimeout(() => child.kill('SIGKILL'), 60_000);
        child.on('close', (status) => {
          clearTimeout(kill);
          resolve({ status, stdout, stderr });
        });
      });
      expect(result.stderr).toBe('');
      const report = JSON.parse(result.stdout) as { abortMs: number; read: { outcome: string; ms: number }; tick: { outcome: string; ms: number } };
      expect(report.read.outcome).toBe('threw TimeoutError');
      expect(report.tick.outcome).toBe('returned error');
      // Bounded by the abort, not by the server: within the abort plus a margin for a busy machine.
      expect(report.read.ms).toBeLessThan(report.abortMs + 15_000);
      expect(report.tick.ms).toBeLessThan(report.abortMs + 15_000);
    });
  }, 90_000);

  it('stops leading in the same try when its Lease was deleted and a standby created it first', () => {
    // Run as the admin: the driver deletes the Lease, which the autoscaler's Role may not.
    const result = spawnSync(path.join(ROOT, 'node_modules', '.bin', 'tsx'), [path.join(__dirname, 'drivers', 'lease-recreated.ts'), NAMESPACE, `${LEASE}-recreated`], {
      cwd: ROOT,
      env: { ...process.env, KUBECONFIG: plane.kubeconfig },
      encoding: 'utf8',
      timeout: 60_000,
    });
    expect(result.stderr).toBe('');
    const { events } = JSON.parse(result.stdout) as { events: string[] };
    const refused = events.indexOf('create refused');
    expect(events.slice(events.indexOf('read found no Lease'), refused + 1)).toEqual(['read found no Lease', 'standby created the Lease', 'create refused']);
    // Taking the refusal for a mere conflict, it went on leading until its next try read the
    // standby's Lease: two leaders for a retry period.
    expect(events.slice(refused + 1)).toEqual(['read held by standby', 'stopped leading']);
  }, 90_000);

  it('refuses an old leader\'s decision write that lands after a new leader scaled, so the scale is not taken for a person\'s', () => {
    recreateWorker(plane, 1);
    const heldBefore = workerEvents(plane, 'ManualScaleDetected').length;
    const result = spawnSync(path.join(ROOT, 'node_modules', '.bin', 'tsx'), [path.join(__dirname, 'drivers', 'late-decision-write.ts'), NAMESPACE, WORKER], {
      cwd: ROOT,
      env: { ...process.env, KUBECONFIG: kubeconfig },
      encoding: 'utf8',
      timeout: 60_000,
    });
    expect(result.stderr).toBe('');
    const report = JSON.parse(result.stdout) as Record<string, unknown>;
    expect(report).toMatchObject({
      newLeader: 'scale_up',
      afterNewLeader: { replicas: 2, last: expect.objectContaining({ replicas: 2, reason: 'scale_up' }) },
      // The old leader's late write was refused; read again, the count is the new leader's own.
      afterOldLeader: { replicas: 2, last: expect.objectContaining({ replicas: 2 }) },
    });
    expect(report.newLeaderNext).not.toBe('manual_scale');
    expect(workerEvents(plane, 'ManualScaleDetected')).toHaveLength(heldBefore);
  }, 90_000);

  it('patches the scale with the resourceVersion it read: a stale write is refused, read again and retried', () => {
    recreateWorker(plane, 1);
    const result = spawnSync(path.join(ROOT, 'node_modules', '.bin', 'tsx'), [path.join(__dirname, 'drivers', 'scale-conflict.ts'), NAMESPACE, WORKER], {
      cwd: ROOT,
      env: { ...process.env, KUBECONFIG: kubeconfig },
      encoding: 'utf8',
      timeout: 60_000,
    });
    expect(result.stderr).toBe('');
    const report = JSON.parse(result.stdout) as { reads: number; conflicts: number };
    expect(report).toEqual({
      before: 1,
      baseline: 'recorded',
      staleWrite: 'conflict',
      staleRecord: 'conflict',
      afterStale: { replicas: 1, reason: 'baseline' },
      reason: 'scale_up',
      reads: expect.any(Number),
      conflicts: expect.any(Number),
      final: 2,
      lastDecision: expect.objectContaining({ replicas: 2, reason: 'scale_up' }),
    });
    // The overtaking write makes one conflict at least; the Deployment controller's own status
    // writes of the new Deployment can make more on a busy machine. Each conflict costs one read.
    expect(report.conflicts).toBeGreaterThanOrEqual(1);
    expect(report.reads).toBe(report.conflicts + 1);
    expect(workerState(plane).replicas).toBe(2);
  }, 90_000);

  it('scales a filling backlog up at most doubling per step, and down only after the stabilisation window', async () => {
    recreateWorker(plane, 1);
    const pipeline = await startPipeline();
    // The autoscaler reads the backlog through a proxy that the test closes while the worker
    // drains, so that its window begins at a backlog of 0 rather than partway down a drain whose
    // pace a busy machine sets (a drain longer than the window would end it before the check below).
    const { proxy: backlogPath, url: proxiedDatabaseUrl } = await startProxyFor(pipeline.db.url, 5432);
    try {
      const autoscaler = await start('autoscaler-a', { AUTOSCALER_SCALE_DOWN_STABILIZATION_SECONDS: '6' }, proxiedDatabaseUrl);
      // 60 unfinished messages at 10 per replica ask for 6 workers; nobody consumes them yet.
      const replies = await Promise.all(Array.from({ length: 60 }, (_, i) => postMetaText(pipeline.ingest.baseUrl, { from: `1555000${1000 + i}`, text: 'one margherita' })));
      expect(replies.map((reply) => reply.status)).toEqual(replies.map(() => 200));
      await waitFor('the worker Deployment at 6 replicas', () => workerState(plane).replicas === 6, SETTLE_MS);
      expect(await metric(autoscaler, 'wagate_autoscaler_backlog_messages')).toBe(60);
      const steps = workerEvents(plane, 'Scaled').map((message) => /^scaled from (\d+) to (\d+) replicas \(scale_up\)/.exec(message)!.slice(1).map(Number));
      expect(steps).toEqual(expect.arrayContaining([[1, 2], [2, 4], [4, 6]]));
      for (const [from, to] of steps) expect(to! <= 2 * from!).toBe(true);
      expect(lastDecision(plane)).toMatchObject({ replicas: 6, reason: 'scale_up' });

      // Its ticks fail until the backlog is gone: none of them sees the drain half done.
      backlogPath.setMode('refuse');
      await pipeline.startWorker();
      await waitFor('the backlog to drain', async () => (await countBacklog(pipeline.db.sql)) === 0, SETTLE_MS);
      backlogPath.setMode('forward');
      await waitFor('the autoscaler to read the empty backlog', async () => (await metric(autoscaler, 'wagate_autoscaler_backlog_messages')) === 0, SETTLE_MS);
      // The window runs 6 s from the first of these, and the second comes one tick (1 s) later.
      await waitFor('the window to keep the replicas for a while', async () => (await decisions(autoscaler, 'stabilising')) >= 2, SETTLE_MS);
      expect(workerState(plane).replicas).toBe(6);
      await waitFor('the worker Deployment back at 1 replica', () => workerState(plane).replicas === 1, SETTLE_MS);
      // Down to the highest count asked for during the window, which began at a backlog of 0: straight to 1.
      const downs = workerEvents(plane, 'Scaled').filter((message) => message.includes('(scale_down)'));
      expect(downs).toEqual(['scaled from 6 to 1 replicas (scale_down): backlog 0']);
      expect(lastDecision(plane)).toMatchObject({ replicas: 1, reason: 'scale_down' });
      expect(await metric(autoscaler, 'wagate_autoscaler_desired_replicas')).toBe(1);
    } finally {
      backlogPath.setMode('forward');
      await backlogPath.close();
      await pipeline.stop();
    }
  }, 150_000);

  it('yields to kubectl scale: an Event, a hold metric, a new leader that keeps holding, and a resumption when the hold ends', async () => {
    recreateWorker(plane, 1);
    // No window: without the hold, an empty backlog would take the workers back to 1 at the next tick.
    const env = { AUTOSCALER_SCALE_DOWN_STABILIZATION_SECONDS: '0', AUTOSCALER_MANUAL_HOLD_SECONDS: '20' };
    const a = await start('autoscaler-a', env);
    await waitFor('the autoscaler to adopt the Deployment', () => lastDecision(plane)?.reason === 'adopted_first_run', SETTLE_MS);
    const b = await start('autoscaler-b', env);

    plane.kubectl(['scale', 'deployment', WORKER, '-n', NAMESPACE, '--replicas=3']);
    const [event] = await waitFor('a ManualScaleDetected Event', () => workerEvents(plane, 'ManualScaleDetected').length > 0 && workerEvents(plane, 'ManualScaleDetected'), SETTLE_MS);
    const hold = lastDecision(plane)!;
    expect(hold).toMatchObject({ replicas: 3, reason: 'manual_scale' });
    expect(event).toBe(`manual scale to 3 detected; holding until ${new Date(hold.holdUntilMs!).toISOString().slice(11, 16)}`);
    expect(await metric(a, 'wagate_autoscaler_manual_holds_total')).toBe(1);
    expect(await metric(a, 'wagate_autoscaler_hold_until_timestamp_seconds')).toBe(hold.holdUntilMs! / 1000);

    // The hold lives on the Deployment, so the standby that takes over keeps it.
    await a.stop('SIGKILL');
    await waitFor('the standby to hold off as leader', async () => (await decisions(b, 'manual_hold')) >= 2, SETTLE_MS);
    expect(workerState(plane).replicas).toBe(3);
    // The hold is recorded as announced once a later tick has found its Event: created once, the API server's 409 after.
    await waitFor('the hold recorded as announced', () => lastDecision(plane)?.announced === true, SETTLE_MS);
    expect(workerEvents(plane, 'ManualScaleDetected')).toHaveLength(1);
    expect(await metric(b, 'wagate_autoscaler_hold_until_timestamp_seconds')).toBe(hold.holdUntilMs! / 1000);

    await waitFor('the autoscaler to resume after the hold', () => workerState(plane).replicas === 1, SETTLE_MS);
    expect(Date.now()).toBeGreaterThanOrEqual(hold.holdUntilMs!);
    expect(lastDecision(plane)).toMatchObject({ replicas: 1, reason: 'scale_down' });
    expect(await metric(b, 'wagate_autoscaler_hold_until_timestamp_seconds')).toBe(0);
  }, 120_000);

  it('still yields to kubectl scale after a rollout that kept the count', async () => {
    recreateWorker(plane, 1);
    const autoscaler = await start('autoscaler-a', { AUTOSCALER_SCALE_DOWN_STABILIZATION_SECONDS: '0' });
    const revision = () => workerState(plane).annotations['deployment.kubernetes.io/revision'];
    await waitFor('the adopted decision to carry the first revision', () => revision() !== undefined && lastDecision(plane)?.revision === revision(), SETTLE_MS);
    const before = revision();
    // A new pod template, as `helm upgrade` or a rollout restart after a secret rotation makes.
    plane.kubectl(['rollout', 'restart', 'deployment', WORKER, '-n', NAMESPACE]);
    await waitFor('the decision to follow the new revision', () => revision() !== before && lastDecision(plane)?.revision === revision(), SETTLE_MS);

    plane.kubectl(['scale', 'deployment', WORKER, '-n', NAMESPACE, '--replicas=3']);
    await waitFor('a ManualScaleDetected Event', () => workerEvents(plane, 'ManualScaleDetected').length > 0, SETTLE_MS);
    expect(lastDecision(plane)).toMatchObject({ replicas: 3, reason: 'manual_scale' });
    expect(workerState(plane).replicas).toBe(3);
    expect(await metric(autoscaler, 'wagate_autoscaler_manual_holds_total')).toBe(1);
  }, 90_000);

  it('never scales without recording the decision in the same write, so its own scale is not taken for a kubectl scale', async () => {
    recreateWorker(plane, 1);
    const autoscaler = await start('autoscaler-a', { AUTOSCALER_SCALE_DOWN_STABILIZATION_SECONDS: '0' });
    await waitFor('the autoscaler to adopt the Deployment', () => lastDecision(plane)?.reason === 'adopted_first_run', SETTLE_MS);
    // A write refused as an API server hiccup would refuse it: the scale must not happen
    // without its record. As two writes, the count changed and the decision stayed behind,
    // and a leader that changed in between held for it as for a person's scale.
    const deploymentVerbs = (verbs: string[]) =>
      plane.kubectl(['patch', 'role', 'wagate-autoscaler', '-n', NAMESPACE, '--type=json', '-p', JSON.stringify([{ op: 'replace', path: '/rules/0/verbs', value: verbs }])]);
    deploymentVerbs(['get']);
    try {
      await db.sql`
        INSERT INTO webhook_messages (webhook_source, message_id, status, payload)
        SELECT 'whatsapp', 'unrecorded.' || g, 'queued', '{}'::jsonb FROM generate_series(1, 20) g`;
      await waitFor('a scale refused', async () => (await decisions(autoscaler, 'error')) >= 1, SETTLE_MS);
      expect(workerState(plane).replicas).toBe(1);
      expect(lastDecision(plane)).toMatchObject({ replicas: 1, reason: 'adopted_first_run' });
    } finally {
      deploymentVerbs(['get', 'patch']);
    }
    await waitFor('the scale to be recorded as the autoscaler’s own', () => lastDecision(plane)?.reason === 'scale_up', SETTLE_MS);
    expect(lastDecision(plane)).toMatchObject({ replicas: 2 });
    const steady = await decisions(autoscaler, 'steady');
    await waitFor('two more ticks', async () => (await decisions(autoscaler, 'steady')) >= steady + 2, SETTLE_MS);
    expect(workerEvents(plane, 'ManualScaleDetected')).toEqual([]);
    expect(await metric(autoscaler, 'wagate_autoscaler_manual_holds_total')).toBe(0);
    await db.sql`DELETE FROM webhook_messages WHERE message_id LIKE 'unrecorded.%'`;
  }, 120_000);

  it('caps the workers at the shard count stored in Postgres (what a reshard set), and scales even when it may not record Events', async () => {
    recreateWorker(plane, 1);
    // WORK_SHARDS says 8; a reshard to 2 since then stored 2, and the autoscaler was not restarted.
    await db.sql`INSERT INTO work_shard_settings (queue_prefix, shard_count) VALUES ('wagate', 2)`;
    const eventRule = JSON.stringify({ apiGroups: [''], resources: ['events'], verbs: ['create'] });
    plane.kubectl(['patch', 'role', 'wagate-autoscaler', '-n', NAMESPACE, '--type=json', '-p', JSON.stringify([{ op: 'remove', path: '/rules/3' }])]);
    try {
      const autoscaler = await start('autoscaler-a', { AUTOSCALER_SCALE_DOWN_STABILIZATION_SECONDS: '0' });
      await waitFor('the autoscaler to adopt the Deployment', () => lastDecision(plane)?.reason === 'adopted_first_run', SETTLE_MS);
      // 60 messages at 10 per replica ask for 6 workers; 2 shards have work for 2.
      await db.sql`
        INSERT INTO webhook_messages (webhook_source, message_id, status, payload)
        SELECT 'whatsapp', 'capped.' || g, 'queued', '{}'::jsonb FROM generate_series(1, 60) g`;
      await waitFor('the workers scaled to the stored shard count', () => workerState(plane).replicas === 2, SETTLE_MS);
      const steady = await decisions(autoscaler, 'steady');
      await waitFor('two more ticks at the cap', async () => (await decisions(autoscaler, 'steady')) >= steady + 2, SETTLE_MS);
      expect(workerState(plane).replicas).toBe(2);
      expect(lastDecision(plane)).toMatchObject({ replicas: 2, reason: 'scale_up' });
      // The Event was refused; the scale it would have reported is counted as the scale it was.
      expect(await decisions(autoscaler, 'scale_up')).toBe(1);
      expect(await decisions(autoscaler, 'error')).toBe(0);
      expect(workerEvents(plane, 'Scaled')).toEqual([]);
      await waitFor('the autoscaler to say the Event was refused', () =>
        autoscaler.logs.some((entry) => entry.event === 'Scaled' && String(entry.msg).includes('could not record a Kubernetes Event')), SETTLE_MS);
      // The chart's write guard bound on the Deployment, below the autoscaler's own maximum (an
      // upgrade lowered worker.autoscaling.maxReplicas, this pod not yet replaced): it goes down to it.
      plane.kubectl(['annotate', '--overwrite', 'deployment', WORKER, '-n', NAMESPACE, 'wagate.io/autoscaler-max-replicas=1']);
      await waitFor('the workers at the write guard\'s bound', () => workerState(plane).replicas === 1, SETTLE_MS);
      expect(lastDecision(plane)).toMatchObject({ replicas: 1, reason: 'out_of_bounds' });
    } finally {
      plane.kubectl(['patch', 'role', 'wagate-autoscaler', '-n', NAMESPACE, '--type=json', '-p', `[{"op":"add","path":"/rules/-","value":${eventRule}}]`]);
      await db.sql`DELETE FROM webhook_messages WHERE message_id LIKE 'capped.%'`;
      await db.sql`DELETE FROM work_shard_settings WHERE queue_prefix = 'wagate'`;
    }
  }, 120_000);

  it('does nothing while wagate.io/autoscaler-paused is "true", and resumes from what was set meanwhile once it is removed', async () => {
    recreateWorker(plane, 1);
    const autoscaler = await start('autoscaler-a', { AUTOSCALER_SCALE_DOWN_STABILIZATION_SECONDS: '0' });
    await waitFor('the autoscaler to adopt the Deployment', () => lastDecision(plane)?.reason === 'adopted_first_run', SETTLE_MS);
    plane.kubectl(['annotate', 'deployment', WORKER, '-n', NAMESPACE, 'wagate.io/autoscaler-paused=true']);
    await waitFor('the paused gauge', async () => (await metric(autoscaler, 'wagate_autoscaler_paused')) === 1, SETTLE_MS);
    plane.kubectl(['scale', 'deployment', WORKER, '-n', NAMESPACE, '--replicas=4']);
    await waitFor('the scale to be taken as the baseline', () => lastDecision(plane)?.replicas === 4, SETTLE_MS);
    const pausedTicks = await decisions(autoscaler, 'paused');
    await waitFor('two more paused ticks', async () => (await decisions(autoscaler, 'paused')) >= pausedTicks + 2, SETTLE_MS);
    expect(workerState(plane).replicas).toBe(4);
    expect(lastDecision(plane)).toMatchObject({ replicas: 4, reason: 'paused' });

    plane.kubectl(['annotate', 'deployment', WORKER, '-n', NAMESPACE, 'wagate.io/autoscaler-paused-']);
    await waitFor('the autoscaler to act again', () => workerState(plane).replicas === 1, SETTLE_MS);
    expect(await metric(autoscaler, 'wagate_autoscaler_paused')).toBe(0);
    expect(workerEvents(plane, 'ManualScaleDetected')).toEqual([]);
    expect(await metric(autoscaler, 'wagate_autoscaler_manual_holds_total')).toBe(0);
  }, 90_000);

  it('records the pause at its first paused tick, so a scale and the annotation\'s removal right after it are not held for', async () => {
    // The count did not change, yet the pause is on record.
    const autoscaler = await pausedOnRecord();
    // Whether a paused tick runs between these two or not, the count is the baseline.
    plane.kubectl(['scale', 'deployment', WORKER, '-n', NAMESPACE, '--replicas=4']);
    plane.kubectl(['annotate', 'deployment', WORKER, '-n', NAMESPACE, 'wagate.io/autoscaler-paused-']);
    await waitFor('the autoscaler to act again', () => workerState(plane).replicas === 1, SETTLE_MS);
    expect(workerEvents(plane, 'ManualScaleDetected')).toEqual([]);
    expect(await metric(autoscaler, 'wagate_autoscaler_manual_holds_total')).toBe(0);
  }, 90_000);

  it('holds for a manual scale made after a pause has ended with the count unchanged', async () => {
    const autoscaler = await pausedOnRecord();
    plane.kubectl(['annotate', 'deployment', WORKER, '-n', NAMESPACE, 'wagate.io/autoscaler-paused-']);
    await waitFor('the resume on record', () => lastDecision(plane)?.reason === 'resumed', SETTLE_MS);
    plane.kubectl(['scale', 'deployment', WORKER, '-n', NAMESPACE, '--replicas=4']);
    await waitFor('the manual scale held for', async () => (await metric(autoscaler, 'wagate_autoscaler_manual_holds_total')) === 1, SETTLE_MS);
    expect(workerState(plane).replicas).toBe(4);
  }, 90_000);

  it('feeds every panel of the dashboard row, and keeps the no-leader alert quiet while one leads', async () => {
    recreateWorker(plane, 1);
    const a = await start('autoscaler-a');
    const b = await start('autoscaler-b');
    await waitFor('a leader', async () => (await metric(a, 'wagate_autoscaler_leader')) === 1, SETTLE_MS);
    const host = (process: ChildIngest) => new URL(process.metricsUrl).host;
    const prometheus = await startPrometheus({ jobs: { 'wagate-autoscaler': [host(a), host(b)] } });
    try {
      await prometheus.waitForScrapes(3);
      const { dashboard, noLeader } = autoscalerQueries();
      expect(dashboard.map((target) => target.ref).sort()).toEqual(['ASA', 'ASB', 'ASC', 'ASD', 'ASE', 'ASF', 'ASG']);
      const failures: string[] = [];
      for (const target of dashboard) {
        const response = await prometheus.query(target.expr);
        const values = (response.data?.result ?? []).map((sample) => Number(sample.value?.[1]));
        if (response.status !== 'success' || !values.some(Number.isFinite)) failures.push(`${target.ref}: ${response.error ?? 'no finite value'} in ${target.expr}`);
      }
      expect(failures).toEqual([]);
      expect((await prometheus.query('sum(wagate_autoscaler_leader{role="autoscaler"})')).data!.result[0]!.value![1]).toBe('1');
      const alert = await prometheus.query(noLeader);
      expect(alert.status).toBe('success');
      expect(alert.data!.result).toEqual([]);
    } finally {
      await prometheus.stop();
    }
  }, 90_000);
});
