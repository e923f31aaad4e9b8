import { readFileSync } from 'node:fs';
import path from 'node:path';
import { loadConfig } from '../../src/config';
import { useControlPlane } from '../support/control-plane';
import { CHART_DIR, ROOT, find, helm, podTemplates, render, renderError, scenarioFile, type K8sObject, type RenderOptions } from './helm';

/**
 * Each process opens at most its pool, and Postgres refuses connections beyond max_connections:
 * a release sized past it runs fine at its usual size and fails at a traffic peak, when the
 * autoscalers add pods that cannot connect. The chart prints the worst case and refuses a render
 * above database.maxConnections.
 */

/** The pool a wagate command fixes whatever DB_POOL_MAX says, read from its source. */
function fixedPool(command: string): number {
  const source = readFileSync(path.join(ROOT, 'src', 'commands', `${command}.ts`), 'utf8');
  const pool = /databaseFromConfig\(config, [^,]+, \{ maxConnections: (\d+)/.exec(source)?.[1];
  if (!pool) throw new Error(`src/commands/${command}.ts no longer fixes its pool with databaseFromConfig(…, { maxConnections })`);
  return Number(pool);
}

const componentOf = (object: K8sObject) => object.metadata.labels!['app.kubernetes.io/component']!;

/** Pods a rolling update adds: Kubernetes rounds a percentage up, and defaults to 25%. */
function surgeOf(deployment: K8sObject, pods: number): number {
  const maxSurge: string | number = deployment.spec.strategy?.rollingUpdate?.maxSurge ?? '25%';
  return typeof maxSurge === 'number' ? maxSurge : Math.ceil((pods * Number(maxSurge.replace('%', ''))) / 100);
}

/** The most pods of a Deployment: what scales it may go up to, else its replicas. */
function mostPods(objects: K8sObject[], deployment: K8sObject): number {
  const targets = (o: K8sObject) => o.spec?.scaleTargetRef?.name === deployment.metadata.name;
  const hpa = objects.find((o) => o.kind === 'HorizontalPodAutoscaler' && targets(o));
  if (hpa) return hpa.spec.maxReplicas;
  const scaledObject = objects.find((o) => o.kind === 'ScaledObject' && targets(o));
  if (scaledObject) return scaledObject.spec.maxReplicaCount;
  const autoscaler = objects.find((o) => o.kind === 'Deployment' && componentOf(o) === 'autoscaler');
  const builtinMax = autoscaler?.spec.template.spec.containers[0].env.find((e: any) => e.name === 'AUTOSCALER_MAX_REPLICAS');
  if (componentOf(deployment) === 'worker' && builtinMax) return Number(builtinMax.value);
  return deployment.spec.replicas;
}

/** DB_POOL_MAX as the container sees it: the last env entry wins over the ConfigMap; empty is unset. */
function poolOf(objects: K8sObject[], container: any): number {
  const entries = (container.env as { name: string; value?: string }[]).filter((e) => e.name === 'DB_POOL_MAX');
  const value = entries.length > 0 ? entries.at(-1)!.value : find(objects, 'ConfigMap', '-config').data!.DB_POOL_MAX;
  return value === undefined || value === '' ? 10 : Number(value);
}

/** The worst case computed from the rendered objects alone, independently of the chart's helper. */
function worstCase(objects: K8sObject[]): number {
  let total = 0;
  for (const deployment of objects.filter((o) => o.kind === 'Deployment')) {
    const pods = mostPods(objects, deployment);
    const role = componentOf(deployment);
    const pool = role === 'autoscaler' ? fixedPool('autoscaler') : poolOf(objects, deployment.spec.template.spec.containers[0]);
    total += (pods + surgeOf(deployment, pods)) * pool;
  }
  for (const { owner } of podTemplates(objects).filter(({ owner }) => owner.kind !== 'Deployment')) {
    // One pod at a time: the Job runs one, the CronJob forbids overlapping runs.
    expect([owner.metadata.name, owner.spec.parallelism ?? owner.spec.jobTemplate?.spec.parallelism ?? 1]).toEqual([owner.metadata.name, 1]);
    if (owner.kind === 'CronJob') expect(owner.spec.concurrencyPolicy).toBe('Forbid');
    total += componentOf(owner) === 'migrate' ? fixedPool('migrate') : fixedPool('operations');
  }
  return total;
}

const minimal = scenarioFile('minimal');
const withLimit = (options: RenderOptions, maxConnections: number): RenderOptions => ({ ...options, set: [...(options.set ?? []), `database.maxConnections=${maxConnections}`] });

describe('the Postgres connection budget', () => {
  it('counts 309 connections at the default maxima, beyond Postgres\'s default max_connections of 100', () => {
    expect(worstCase(render({ valuesFiles: [minimal] }))).toBe(309);
    // What poolOf assumes of an empty DB_POOL_MAX, which an extraEnv may set over the ConfigMap's.
    expect(loadConfig({ NODE_ENV: 'test', DB_POOL_MAX: '' }).DB_POOL_MAX).toBe(10);
    expect(renderError(withLimit({ valuesFiles: [minimal] }, 100))).toContain('the release may open 309 Postgres connections at once, more than database.maxConnections (100)');
  });

  it.each<[string, RenderOptions]>([
    ['the defaults', { valuesFiles: [minimal] }],
    ['the production example', { valuesFiles: [scenarioFile('production')] }],
    ['KEDA', { valuesFiles: [scenarioFile('keda')] }],
    ['a CPU HPA for workers', { valuesFiles: [minimal], set: ['worker.autoscaling.mode=hpa', 'worker.autoscaling.maxReplicas=20'] }],
    ['fixed replicas', { valuesFiles: [minimal], set: ['worker.autoscaling.mode=off', 'worker.replicas=5', 'ingest.autoscaling.enabled=false', 'ingest.replicas=7'] }],
    ['pools set per role through extraEnv', { valuesFiles: [minimal], set: ['extraEnv[0].name=DB_POOL_MAX', 'worker.extraEnv[0].name=DB_POOL_MAX'], setString: ['extraEnv[0].value=6', 'worker.extraEnv[0].value=4'] }],
    ['an empty DB_POOL_MAX, which wagate reads as its default', { valuesFiles: [minimal], set: ['config.DB_POOL_MAX=4', 'ingest.extraEnv[0].name=DB_POOL_MAX'], setString: ['ingest.extraEnv[0].value='] }],
    ['no migration hook and no cleanup', { valuesFiles: [minimal], set: ['migrations.enabled=false', 'cleanup.enabled=false'] }],
  ])('refuses a limit one below the worst case the rendered objects add up to, and renders at it, with %s', (_name, options) => {
    const worst = worstCase(render(options));
    expect(renderError(withLimit(options, worst - 1))).toContain(`the release may open ${worst} Postgres connections at once, more than database.maxConnections (${worst - 1})`);
    expect(render(withLimit(options, worst)).length).toBeGreaterThan(0);
  });

  it('says how the worst case adds up per role and what to change', () => {
    const message = renderError(withLimit({ valuesFiles: [minimal], set: ['worker.extraEnv[0].name=DB_POOL_MAX'], setString: ['worker.extraEnv[0].value=4'] }, 100));
    for (const line of [
      '- ingest: 13 pods (10 at ingest.autoscaling.maxReplicas, + 3 in a rolling update at maxSurge 25%) × 10 connections (DB_POOL_MAX) = 130',
      '- worker: 17 pods (16 at worker.autoscaling.maxReplicas, + 1 in a rolling update at maxSurge 1) × 4 connections (DB_POOL_MAX) = 68',
      '- autoscaler: 3 pods (2 at autoscaler.replicas, + 1 in a rolling update at maxSurge 25%) × 2 connections (its own pool) = 6',
      '- migrate Job: 1 pod × 1 connection (its own pool) = 1',
      '- cleanup CronJob: 1 pod × 2 connections (its own pool) = 2',
    ]) expect(message).toContain(line);
    for (const remedy of ['lower ingest.autoscaling.maxReplicas or worker.autoscaling.maxReplicas', 'through ingest.extraEnv or worker.extraEnv', 'raise max_connections', 'PgBouncer in transaction mode']) {
      expect(message).toContain(remedy);
    }
  });

  it('refuses to count a pool it cannot read once a limit is declared, and renders it while none is', () => {
    const fromConfigMap = ['worker.extraEnv[0].name=DB_POOL_MAX', 'worker.extraEnv[0].valueFrom.configMapKeyRef.name=pools', 'worker.extraEnv[0].valueFrom.configMapKeyRef.key=worker'];
    expect(render({ valuesFiles: [minimal], set: fromConfigMap }).length).toBeGreaterThan(0);
    expect(renderError(withLimit({ valuesFiles: [minimal], set: fromConfigMap }, 1000))).toContain('DB_POOL_MAX of worker is set through valueFrom');
  });

  it('refuses a negative limit through the schema', () => {
    expect(renderError(withLimit({ valuesFiles: [minimal] }, -1))).toMatch(/maxConnections/);
  });

  describe('in the install notes, from a real API server', () => {
    const plane = useControlPlane();

    const notes = (args: string[]) => {
      const result = helm(['install', 'shop', CHART_DIR, '--dry-run=server', '-n', 'default', ...args], plane().env);
      expect([result.status, result.status === 0 ? '' : result.stderr]).toEqual([0, '']);
      return result.stdout.slice(result.stdout.indexOf('NOTES:'));
    };

    it('prints the worst case on every install, and asks for database.maxConnections while it is undeclared', () => {
      const undeclared = notes(['-f', minimal]);
      expect(undeclared).toContain('At most 309 at once, with every role at its most pods during a rolling update:');
      expect(undeclared).toContain('- worker: 17 pods (16 at worker.autoscaling.maxReplicas, + 1 in a rolling update at maxSurge 1) × 10 connections (DB_POOL_MAX) = 170');
      expect(undeclared).toContain('database.maxConnections is not declared');
      const declared = notes(['-f', scenarioFile('production')]);
      expect(declared).toContain('At most 393 at once');
      expect(declared).toContain('That is within database.maxConnections (397).');
      expect(declared).not.toContain('is not declared');
    }, 60_000);

    it('warns when the autoscaler runs without its write guard, whose absence leaves its token able to rewrite the worker', () => {
      expect(notes(['-f', minimal])).not.toContain('autoscaler.writeGuard is false');
      expect(notes(['-f', minimal, '--set', 'autoscaler.writeGuard=false'])).toContain('WARNING: autoscaler.writeGuard is false. RBAC lets the autoscaler patch the whole worker');
    }, 60_000);
  });
});
