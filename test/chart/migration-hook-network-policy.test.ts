import { spawn } from 'node:child_process';
import { useControlPlane } from '../support/control-plane';
import { waitFor } from '../support/wait';
import { CHART_DIR, find, helm, helmBinary, renderScenario, scenarioFile, type K8sObject } from './helm';

/** How long Helm waits for the hook Job: far above the moment the test marks its pod succeeded. */
const HOOK_TIMEOUT = '60s';

const isHook = (object: K8sObject) => object.metadata.annotations?.['helm.sh/hook'] !== undefined;
const hookWeight = (object: K8sObject) => Number(object.metadata.annotations!['helm.sh/hook-weight']);
const componentOf = (object: K8sObject) => object.metadata.labels?.['app.kubernetes.io/component'];

/**
 * Under default-deny egress the migration Job's pod needs its NetworkPolicy before it starts:
 * Helm makes the release's own objects only after the pre-install hooks, and a pre-upgrade Job
 * would otherwise run under the previous release's rules.
 */
describe('the migration hook\'s NetworkPolicy', () => {
  it('is a pre-install,pre-upgrade hook that Helm makes before the other migrate hooks, deleted as they are', () => {
    for (const [scenario, others] of [['minimal', ['Job', 'Secret', 'ServiceAccount']], ['production', ['Job', 'ServiceAccount']]] as const) {
      const objects = renderScenario(scenario);
      const policy = find(objects, 'NetworkPolicy', '-migrate');
      expect(policy.metadata.annotations).toMatchObject({
        'helm.sh/hook': 'pre-install,pre-upgrade',
        'helm.sh/hook-delete-policy': 'before-hook-creation,hook-succeeded',
      });
      const otherHooks = objects.filter((object) => isHook(object) && object !== policy);
      expect(otherHooks.map((object) => object.kind).sort()).toEqual(others);
      for (const hook of otherHooks) expect([hook.kind, hookWeight(policy) < hookWeight(hook)]).toEqual([hook.kind, true]);
    }
  });

  it('leaves the release a policy for every long-lived role and the cleanup, and none for the migration pods', () => {
    const regular = renderScenario('minimal').filter((object) => object.kind === 'NetworkPolicy' && !isHook(object));
    expect(regular.map(componentOf).sort()).toEqual(['autoscaler', 'cleanup', 'ingest', 'worker']);
    for (const policy of regular) expect(policy.spec.podSelector.matchLabels['app.kubernetes.io/component']).toBe(componentOf(policy));
  });

  it('is left out with the migration hook', () => {
    const objects = renderScenario('minimal', { set: ['migrations.enabled=false'] });
    expect(objects.filter((object) => object.kind === 'NetworkPolicy').map(componentOf).sort()).toEqual(['autoscaler', 'cleanup', 'ingest', 'worker']);
  });
});

describe('the migration hook under helm install and upgrade, in a real API server', () => {
  const plane = useControlPlane();

  const getJson = (namespace: string, resource: string): K8sObject | undefined => {
    const text = plane().kubectl(['-n', namespace, 'get', resource, '--ignore-not-found', '-o', 'json']);
    return text.trim() === '' ? undefined : (JSON.parse(text) as K8sObject);
  };

  /**
   * Runs helm install or upgrade to the end, and returns the migrate NetworkPolicy as it stood
   * when Helm made the hook Job. No kubelet runs the Job's pod here: the test marks it succeeded,
   * as a finished migration would be.
   */
  const runHooks = async (namespace: string, args: string[]) => {
    const child = spawn(helmBinary(), [...args, CHART_DIR, '-n', namespace, '-f', scenarioFile('minimal'), '--timeout', HOOK_TIMEOUT], {
      env: { ...process.env, ...plane().env },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
    try {
      // Helm that gave up (a render refused) makes no Job: say why rather than wait for one.
      const gaveUp = exited.then((code) => Promise.reject(new Error(`helm ${args[0]} exited with ${code} before the migrate Job was seen: ${stderr}`)));
      gaveUp.catch(() => undefined);
      await Promise.race([waitFor('the migrate Job', () => getJson(namespace, 'job/shop-wagate-migrate'), 60_000), gaveUp]);
      const policyAtJob = getJson(namespace, 'networkpolicy/shop-wagate-migrate');
      const listPods = () => plane().kubectl(['-n', namespace, 'get', 'pods', '-l', 'app.kubernetes.io/component=migrate', '-o', 'name']).trim();
      const pod = await waitFor('the migrate pod', listPods, 60_000);
      plane().kubectl(['-n', namespace, 'patch', pod, '--subresource=status', '--type=merge', '-p', JSON.stringify({ status: { phase: 'Succeeded' } })]);
      return { policyAtJob, status: await exited, stderr };
    } finally {
      child.kill();
    }
  };
  const postgresPorts = (policy: K8sObject | undefined) => policy?.spec.egress[1].ports.map((port: { port: number }) => port.port);

  it('has the Job\'s NetworkPolicy in place before `helm install` makes the Job, and removes it with the Job', async () => {
    plane().kubectl(['create', 'namespace', 'install']);
    const { policyAtJob, status, stderr } = await runHooks('install', ['install', 'shop']);
    expect(postgresPorts(policyAtJob)).toEqual([5432]);
    expect([status, stderr]).toEqual([0, '']);
    expect(getJson('install', 'networkpolicy/shop-wagate-migrate')).toBeUndefined();
    expect(getJson('install', 'networkpolicy/shop-wagate-cleanup')).toBeDefined();
  }, 120_000);

  it('gives a pre-upgrade Job the NetworkPolicy of the new values, not the previous release\'s', async () => {
    plane().kubectl(['create', 'namespace', 'upgrade']);
    const installed = helm(['install', 'shop', CHART_DIR, '--no-hooks', '-n', 'upgrade', '-f', scenarioFile('minimal')], plane().env);
    expect([installed.status, installed.stderr]).toEqual([0, '']);
    // Postgres moved behind PgBouncer: the URL and the policy's port change together, as the render requires.
    const behindPgBouncer = ['--set', 'networkPolicy.postgres.port=6432', '--set-string', 'secrets.databaseUrl=postgres://wagate:change-me@pgbouncer:6432/wagate'];
    const { policyAtJob, status, stderr } = await runHooks('upgrade', ['upgrade', 'shop', ...behindPgBouncer]);
    expect(postgresPorts(policyAtJob)).toEqual([6432]);
    expect([status, stderr]).toEqual([0, '']);
  }, 120_000);
});
