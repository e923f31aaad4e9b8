import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { stringify } from 'yaml';
import { startControlPlane, type ControlPlane } from '../support/control-plane';
import { createTestDatabase } from '../support/database';
import { waitFor } from '../support/wait';
import { CHART_DIR, GATED_API_VERSIONS, ROOT, SCENARIOS, find, helm, helmBinary, parseObjects, renderScenario, renderText, scenarioFile, type K8sObject } from '../chart/helm';

const CRD_DIR = path.join(ROOT, 'test', 'fixtures', 'crds');
const K8S_VARIANTS = { base: 'k8s/base', production: 'k8s/overlays/production', keda: 'k8s/overlays/keda' } as const;

/** The chart and k8s/ against a real kube-apiserver: schema validation, admission and RBAC. */
describe('the chart in a real API server', () => {
  let plane: ControlPlane;
  const kubectl = (args: string[], input?: string) => plane.kubectl(args, { input });
  const helmIn = (args: string[]) => helm(args, plane.env);
  const dryRunServer = (namespace: string, objects: K8sObject[]) =>
    kubectl(['apply', '--dry-run=server', '-n', namespace, '-f', '-'], objects.map((o) => `---\n${stringify(o)}`).join('\n'));

  beforeAll(async () => {
    plane = await startControlPlane();
    kubectl(['apply', '--server-side', '-f', CRD_DIR]);
    kubectl(['wait', '--for=condition=Established', '--timeout=60s', '-f', CRD_DIR]);
    for (const namespace of [...SCENARIOS, 'wagate', 'podmonitor']) kubectl(['create', 'namespace', namespace]);
  }, 180_000);

  afterAll(async () => {
    await plane?.stop();
  }, 30_000);

  it('validates every rendered object of every scenario, hooks and monitoring objects included, with a server-side dry run', () => {
    for (const scenario of SCENARIOS) {
      const objects = renderScenario(scenario, { namespace: scenario });
      const kinds = new Set(objects.map((o) => o.kind));
      const expected = { minimal: ['Job', 'Secret'], production: ['ServiceMonitor', 'PrometheusRule', 'Job'], keda: ['ScaledObject', 'TriggerAuthentication'] }[scenario];
      expect(expected.filter((kind) => !kinds.has(kind))).toEqual([]);
      const output = dryRunServer(scenario, objects);
      expect(output.trim().split('\n')).toHaveLength(objects.length);
      expect(output).toMatch(/\(server dry run\)/);
    }
    const podMonitor = renderScenario('production', { namespace: 'podmonitor', set: ['metrics.serviceMonitor.enabled=false', 'metrics.podMonitor.enabled=true'] }).filter((o) => o.kind === 'PodMonitor');
    expect(dryRunServer('podmonitor', podMonitor)).toContain('podmonitor.monitoring.coreos.com/shop-wagate created (server dry run)');
  }, 120_000);

  it('accepts a dual-stack provider rule with exceptions of both address families', () => {
    for (const set of [
      ['networkPolicy.providers.cidrs={0.0.0.0/0,::/0}', 'networkPolicy.providers.except={10.0.0.0/8,fd00::/8}'],
      // Narrowed to a provider's range, the cluster's range still excepted (outside it).
      ['networkPolicy.providers.cidrs={157.240.0.0/16,2a03:2880::/32}', 'networkPolicy.providers.except={10.0.0.0/8,157.240.12.0/24,fd00::/8,2a03:2880:f0ff::/48}'],
    ]) {
      const policies = renderScenario('minimal', { namespace: 'minimal', set }).filter((o) => o.kind === 'NetworkPolicy');
      const output = dryRunServer('minimal', policies);
      expect(output.trim().split('\n')).toHaveLength(policies.length);
      expect(output).toContain('shop-wagate-worker created (server dry run)');
    }
  });

  it('refuses a broken object, so the dry run is a real check', () => {
    const monitor = find(renderScenario('production'), 'ServiceMonitor', 'shop-wagate');
    monitor.spec.endpoints[0].interval = 'every minute';
    expect(() => dryRunServer('production', [monitor])).toThrow(/interval/);
  });

  it('installs the minimal and production scenarios with helm install --no-hooks and prints the NOTES', () => {
    kubectl(['-n', 'production', 'create', 'secret', 'generic', 'wagate-credentials', '--from-literal=DATABASE_URL=postgres://x', '--from-literal=AMQP_URL=amqp://x']);
    for (const scenario of ['minimal', 'production'] as const) {
      const result = helmIn(['install', 'shop', CHART_DIR, '--no-hooks', '-n', scenario, '-f', scenarioFile(scenario)]);
      expect([scenario, result.status, result.status === 0 ? '' : result.stderr]).toEqual([scenario, 0, '']);
      expect(result.stdout).toContain('STATUS: deployed');
      expect(result.stdout).toContain('/api/v1/whatsapp-hardened/twilio/webhook');
    }
    const production = helmIn(['get', 'notes', 'shop', '-n', 'production']).stdout;
    expect(production).toContain('https://shop.example.com/api/v1/whatsapp-hardened/webhook');
    expect(production).toContain('https://shop.example.com/api/v1/whatsapp-hardened/twilio/webhook#rc=3&rp=ct,rt,5xx');
    expect(production).toContain('kubectl -n production scale deployment/shop-wagate-worker');
    // Every command names the release's namespace: notes pasted under another context (the same
    // release name in staging and production) would otherwise scale or pause the wrong workers.
    const keda = helmIn(['install', 'shop', CHART_DIR, '--dry-run=server', '-n', 'keda', '-f', scenarioFile('keda')]);
    expect([keda.status, keda.status === 0 ? '' : keda.stderr]).toEqual([0, '']);
    expect(keda.stdout).toContain('kubectl -n keda annotate scaledobject/shop-wagate-worker autoscaling.keda.sh/paused-replicas=N');
    for (const [namespace, notes] of [['production', production], ['keda', keda.stdout.slice(keda.stdout.indexOf('NOTES:'))]] as const) {
      const commands = notes.split('\n').filter((line) => line.includes('kubectl '));
      expect(commands.length).toBeGreaterThanOrEqual(2);
      expect(commands.filter((line) => !line.includes(`kubectl -n ${namespace} `))).toEqual([]);
    }
    // The real server's API list opens the gates: the monitoring objects were installed, not skipped.
    expect(kubectl(['-n', 'production', 'get', 'servicemonitors,prometheusrules', '-o', 'name']).trim().split('\n').sort()).toEqual([
      'prometheusrule.monitoring.coreos.com/shop-wagate',
      'servicemonitor.monitoring.coreos.com/shop-wagate',
    ]);
    expect(kubectl(['-n', 'minimal', 'get', 'jobs', '-o', 'name']).trim()).toBe('');
    const replicas = kubectl(['-n', 'minimal', 'get', 'deployment', 'shop-wagate-worker', '-o', 'jsonpath={.spec.replicas}']);
    expect(replicas).toBe('1');
  }, 120_000);

  it('prints the providers\' URLs without a doubled slash when PUBLIC_BASE_URL ends in one, as wagate joins them', () => {
    const result = helmIn(['install', 'slash', CHART_DIR, '--dry-run=server', '-n', 'keda', '-f', scenarioFile('minimal'), '--set', 'config.PUBLIC_BASE_URL=https://shop.example.com//']);
    expect([result.status, result.status === 0 ? '' : result.stderr]).toEqual([0, '']);
    const notes = result.stdout.slice(result.stdout.indexOf('NOTES:'));
    expect(notes).toContain('https://shop.example.com/api/v1/whatsapp-hardened/webhook\n');
    expect(notes).toContain('https://shop.example.com/api/v1/whatsapp-hardened/twilio/webhook');
    expect(notes).not.toMatch(/example\.com\/\/+api/);
  }, 60_000);

  it('runs the migration hook\'s command line as `wagate migrate` against a real database', async () => {
    const job = find(renderScenario('minimal'), 'Job', '-migrate');
    const args: string[] = job.spec.template.spec.containers[0].args;
    expect(args).toEqual(['migrate']);
    // The settings the Job gives inline, as the pod would have them (the Secret's DATABASE_URL apart).
    const jobEnv: Record<string, string> = Object.fromEntries(
      (job.spec.template.spec.containers[0].env as { name: string; value?: string }[]).flatMap((entry) => (entry.value === undefined ? [] : [[entry.name, entry.value]])));
    expect(jobEnv).toMatchObject({ WORK_SHARDS: '32' });
    const db = await createTestDatabase({ migrate: false });
    const migrate = (env: Record<string, string>) =>
      spawnSync(process.execPath, [path.join(ROOT, 'dist', 'main.js'), ...args], { env: { PATH: process.env.PATH ?? '', ...jobEnv, LOG_LEVEL: 'warn', DATABASE_URL: db.url, ...env }, encoding: 'utf8' });
    try {
      expect(migrate({}).status).toBe(0);
      const [row] = await db.sql<{ count: number }[]>`SELECT count(*)::int AS count FROM schema_migrations`;
      expect(row?.count).toBe(readdirSync(path.join(ROOT, 'migrations')).filter((f) => f.endsWith('.sql')).length);

      // The group's queues were built 32 ways: an upgrade to WORK_SHARDS 40 without a reshard
      // fails here, before any pod is replaced; every ingest and worker would refuse to start.
      await db.sql`INSERT INTO work_shard_settings (queue_prefix, shard_count) VALUES (${jobEnv.QUEUE_PREFIX ?? 'wagate'}, 32)`;
      const refused = migrate({ WORK_SHARDS: '40' });
      expect([refused.status, refused.stderr]).toEqual([1, expect.stringMatching(/WORK_SHARDS is 40, but the work queues of "[^"]+" are sharded 32 ways.*nothing was migrated.*wagate reshard --to 40 first; if the group runs with 32 already, give this run WORK_SHARDS=32 too/)]);
      expect(migrate({}).status).toBe(0);
      // Refused before it migrates: a database holding only a stored count (and no migration
      // applied, as if those to come were still to apply) is left without any.
      const untouched = await createTestDatabase({ migrate: false });
      try {
        await untouched.sql`CREATE TABLE work_shard_settings (queue_prefix text PRIMARY KEY, shard_count integer NOT NULL)`;
        await untouched.sql`INSERT INTO work_shard_settings VALUES (${jobEnv.QUEUE_PREFIX ?? 'wagate'}, 32)`;
        const before = spawnSync(process.execPath, [path.join(ROOT, 'dist', 'main.js'), ...args], { env: { PATH: process.env.PATH ?? '', ...jobEnv, LOG_LEVEL: 'warn', DATABASE_URL: untouched.url, WORK_SHARDS: '40' }, encoding: 'utf8' });
        expect([before.status, before.stderr]).toEqual([1, expect.stringContaining('nothing was migrated')]);
        expect(await untouched.sql`SELECT to_regclass('schema_migrations') AS found`).toEqual([{ found: null }]);
      } finally {
        await untouched.drop();
      }
    } finally {
      await db.drop();
    }
  }, 60_000);

  it('lets the autoscaler\'s ServiceAccount scale and annotate the worker Deployment, and nothing else', () => {
    const token = kubectl(['-n', 'minimal', 'create', 'token', 'shop-wagate-autoscaler']).trim();
    const asAutoscaler = plane.kubeconfigForToken(token, 'minimal');
    const can = (...args: string[]) => spawnSync(path.join(plane.binDir, 'kubectl'), ['auth', 'can-i', ...args], { env: { ...process.env, ...plane.env, KUBECONFIG: asAutoscaler }, encoding: 'utf8' }).stdout.trim();
    expect(can('patch', 'deployments.apps/shop-wagate-worker')).toBe('yes');
    expect(can('create', 'leases.coordination.k8s.io')).toBe('yes');
    expect(can('create', 'events')).toBe('yes');
    for (const denied of [['patch', 'deployments.apps/shop-wagate-ingest'], ['patch', 'deployments.apps/shop-wagate-worker', '--subresource=scale'], ['list', 'deployments.apps'], ['delete', 'deployments.apps/shop-wagate-worker'], ['get', 'secrets'], ['delete', 'leases.coordination.k8s.io'], ['patch', 'events']]) {
      expect([denied.join(' '), can(...denied)]).toEqual([denied.join(' '), 'no']);
    }
    plane.kubectl(['patch', 'deployment/shop-wagate-worker', '--type=merge', '-p', '{"spec":{"replicas":3}}'], { kubeconfig: asAutoscaler });
    plane.kubectl(['annotate', '--overwrite', 'deployment/shop-wagate-worker', 'wagate.io/autoscaler-last-decision={"replicas":3,"reason":"scale_up","atMs":1}'], { kubeconfig: asAutoscaler });
    expect(kubectl(['-n', 'minimal', 'get', 'deployment', 'shop-wagate-worker', '-o', 'jsonpath={.spec.replicas}'])).toBe('3');
    expect(() => plane.kubectl(['patch', 'deployment/shop-wagate-ingest', '--type=merge', '-p', '{"spec":{"replicas":3}}'], { kubeconfig: asAutoscaler })).toThrow(/forbidden/);
    expect(() => plane.kubectl(['get', 'secrets'], { kubeconfig: asAutoscaler })).toThrow(/forbidden/);
  }, 60_000);

  it('lets the autoscaler\'s ServiceAccount change only the worker\'s count and its own annotations, never its pod template', async () => {
    const token = kubectl(['-n', 'minimal', 'create', 'token', 'shop-wagate-autoscaler']).trim();
    const asAutoscaler = plane.kubeconfigForToken(token, 'minimal');
    const patch = (body: object, dryRun = false) =>
      plane.kubectl(['patch', 'deployment/shop-wagate-worker', '--type=merge', '-p', JSON.stringify(body), ...(dryRun ? ['--dry-run=server'] : [])], { kubeconfig: asAutoscaler });
    const otherImage = { spec: { template: { spec: { containers: [{ name: 'worker', image: 'registry.example/other:1' }] } } } };
    // An admission policy takes effect once the API server has loaded it: asked without writing.
    await waitFor('the write guard to refuse a pod template change', () => {
      try {
        patch(otherImage, true);
        return false;
      } catch (error) {
        return /may not change the worker's pod template/.test((error as Error).message);
      }
    }, 30_000);
    const image = kubectl(['-n', 'minimal', 'get', 'deployment', 'shop-wagate-worker', '-o', 'jsonpath={.spec.template.spec.containers[0].image}']);
    expect(() => patch(otherImage)).toThrow(/ValidatingAdmissionPolicy .* denied request: the wagate autoscaler may not change the worker's pod template/);
    expect(() => patch({ metadata: { labels: { team: 'other' } } })).toThrow(/may not change the worker's labels, owners or finalizers/);
    expect(() => patch({ metadata: { finalizers: ['example.com/hold'] } })).toThrow(/may not change the worker's labels, owners or finalizers/);
    const owner = { apiVersion: 'v1', kind: 'ConfigMap', name: 'gone', uid: '00000000-0000-0000-0000-000000000001' };
    expect(() => patch({ metadata: { ownerReferences: [owner] } })).toThrow(/may not change the worker's labels, owners or finalizers/);
    expect(() => patch({ metadata: { annotations: { 'example.com/owner': 'other' } } })).toThrow(/may change only its wagate\.io\/autoscaler-last-decision annotation/);
    // The operators' switch is theirs, however it is named.
    expect(() => patch({ metadata: { annotations: { 'wagate.io/autoscaler-paused': 'true' } } })).toThrow(/may change only its wagate\.io\/autoscaler-last-decision/);
    for (const spec of [{ paused: true }, { minReadySeconds: 30 }, { revisionHistoryLimit: 1 }, { progressDeadlineSeconds: 60 }, { strategy: { type: 'Recreate', rollingUpdate: null } }]) {
      let refusal = '';
      try {
        patch({ spec });
      } catch (error) {
        refusal = (error as Error).message;
      }
      expect([spec, refusal]).toEqual([spec, expect.stringMatching(/may change no part of the worker's spec but its replicas/)]);
    }
    // A count past the range it is configured to: refused, so a leaked token cannot start
    // hundreds of workers past the connection budget.
    expect(() => patch({ spec: { replicas: 500 } })).toThrow(/may set the worker's replicas only from 1 to its wagate\.io\/autoscaler-max-replicas annotation/);
    expect(() => patch({ spec: { replicas: 0 } })).toThrow(/may set the worker's replicas only from 1/);
    // Up to that maximum (16 here), whatever another release's policy (production's, 32) says.
    patch({ spec: { replicas: 16 } });
    expect(() => patch({ spec: { replicas: 17 } })).toThrow(/may set the worker's replicas only from 1/);
    // Beside a person's count past that range, its decision alone still goes in.
    kubectl(['-n', 'minimal', 'scale', 'deployment/shop-wagate-worker', '--replicas=20']);
    patch({ metadata: { annotations: { 'wagate.io/autoscaler-last-decision': '{"replicas":20,"reason":"manual_scale","atMs":1}' } } });
    // What the autoscaler itself writes: the count and its decision together.
    patch({ metadata: { annotations: { 'wagate.io/autoscaler-last-decision': '{"replicas":2,"reason":"scale_up","atMs":1}' } }, spec: { replicas: 2 } });
    expect(kubectl(['-n', 'minimal', 'get', 'deployment', 'shop-wagate-worker', '-o', 'jsonpath={.spec.replicas} {.spec.template.spec.containers[0].image}'])).toBe(`2 ${image}`);
    // Anyone else (here the cluster admin) is not held by it.
    expect(kubectl(['-n', 'minimal', 'patch', 'deployment/shop-wagate-worker', '--type=merge', '--dry-run=server', '-p', JSON.stringify(otherImage)])).toContain('patched');
  }, 60_000);

  it('keeps a helm upgrade from resetting the autoscaled worker count', () => {
    const worker = (jsonpath: string) => kubectl(['-n', 'minimal', 'get', 'deployment', 'shop-wagate-worker', '-o', `jsonpath={${jsonpath}}`]);
    kubectl(['-n', 'minimal', 'scale', 'deployment/shop-wagate-worker', '--replicas=4']);
    const checksum = worker('.spec.template.metadata.annotations.checksum/config');
    const result = helmIn(['upgrade', 'shop', CHART_DIR, '--no-hooks', '-n', 'minimal', '-f', scenarioFile('minimal'), '--set', 'config.LOG_LEVEL=debug']);
    expect([result.status, result.status === 0 ? '' : result.stderr]).toEqual([0, '']);
    expect(worker('.spec.template.metadata.annotations.checksum/config')).not.toBe(checksum);
    expect(worker('.spec.replicas')).toBe('4');
  }, 60_000);

  it('installs mode off, and switching it to builtin leaves one worker and no stale decision for the autoscaler', () => {
    kubectl(['create', 'namespace', 'switch']);
    const worker = (jsonpath: string) => kubectl(['-n', 'switch', 'get', 'deployment', 'shop-wagate-worker', '-o', `jsonpath={${jsonpath}}`]);
    const install = (mode: string) =>
      helmIn([mode === 'off' ? 'install' : 'upgrade', 'shop', CHART_DIR, '--no-hooks', '-n', 'switch', '-f', scenarioFile('minimal'), '--set', `worker.autoscaling.mode=${mode}`, '--set', 'worker.replicas=3']);
    const installed = install('off');
    expect([installed.status, installed.status === 0 ? '' : installed.stderr]).toEqual([0, '']);
    expect(worker('.spec.replicas')).toBe('3');
    // What an autoscaler left from an earlier builtin period: it must not outlive mode off.
    kubectl(['-n', 'switch', 'annotate', '--overwrite', 'deployment/shop-wagate-worker', 'wagate.io/autoscaler-last-decision={"replicas":3,"reason":"scale_up","atMs":1}']);
    const upgraded = install('builtin');
    expect([upgraded.status, upgraded.status === 0 ? '' : upgraded.stderr]).toEqual([0, '']);
    // Helm removes the replicas field it set before, and Kubernetes defaults it: the autoscaler
    // scales from one worker (docs/operations.md says so), and reads no decision of its own.
    expect(worker('.spec.replicas')).toBe('1');
    expect(worker('.metadata.annotations')).not.toContain('wagate.io/autoscaler-last-decision');
    expect(worker('.metadata.annotations')).toContain('"wagate.io/autoscaling-mode":"builtin"');
  }, 60_000);

  describe('k8s/ for kubectl users', () => {
    /** Objects as both tools print them, minus what only Helm adds and the namespace kustomize sets. */
    const normalise = (objects: K8sObject[]) =>
      Object.fromEntries(
        objects.map((o) => {
          const copy = JSON.parse(JSON.stringify(o)) as K8sObject;
          delete copy.metadata.namespace;
          for (const labels of [copy.metadata.labels]) if (labels) delete labels['helm.sh/chart'], delete labels['app.kubernetes.io/managed-by'];
          return [`${o.kind}/${o.metadata.name}`, copy];
        }),
      );

    it('is what scripts/render-k8s.sh makes from the chart today', () => {
      const out = mkdtempSync(path.join(os.tmpdir(), 'wagate-k8s-'));
      try {
        execFileSync('bash', [path.join(ROOT, 'scripts', 'render-k8s.sh'), out], { env: { ...process.env, WAGATE_HELM_BIN: path.dirname(helmBinary()) }, stdio: 'pipe' });
        for (const file of ['base/wagate.yaml', 'overlays/production/monitoring.yaml', 'overlays/keda/keda.yaml']) {
          expect([file, readFileSync(path.join(out, file), 'utf8') === readFileSync(path.join(ROOT, 'k8s', file), 'utf8')]).toEqual([file, true]);
        }
      } finally {
        rmSync(out, { recursive: true, force: true });
      }
    });

    /** What `kubectl kustomize` builds from the overlay docs/operations.md shows under this first line. */
    const buildDocumentedOverlay = (firstLine: RegExp): K8sObject[] => {
      const docs = readFileSync(path.join(ROOT, 'docs', 'operations.md'), 'utf8');
      const snippet = new RegExp(`\`\`\`yaml\\n(${firstLine.source}[\\s\\S]*?)\`\`\``).exec(docs)?.[1];
      expect(snippet).toBeDefined();
      const mine = mkdtempSync(path.join(os.tmpdir(), 'wagate-my-overlay-'));
      try {
        const production = path.relative(mine, path.join(ROOT, 'k8s', 'overlays', 'production'));
        writeFileSync(path.join(mine, 'kustomization.yaml'), snippet!.replace('../wagate/k8s/overlays/production', production));
        return parseObjects(kubectl(['kustomize', mine]));
      } finally {
        rmSync(mine, { recursive: true, force: true });
      }
    };

    it('takes the release label that docs/operations.md shows for the monitoring objects of the production overlay', () => {
      const built = buildDocumentedOverlay(/# my-wagate\/kustomization\.yaml\n/);
      const monitoring = built.filter((o) => o.kind === 'ServiceMonitor' || o.kind === 'PrometheusRule');
      expect(monitoring.map((o) => o.kind).sort()).toEqual(['PrometheusRule', 'ServiceMonitor']);
      for (const object of monitoring) expect(object.metadata.labels?.release).toBe('kube-prometheus-stack');
      expect(built.filter((o) => o.metadata.labels?.release !== undefined)).toHaveLength(2);
    });

    it('moves to another namespace whole with the namespace transformer docs/operations.md shows: RoleBinding subject and monitors too', () => {
      const built = buildDocumentedOverlay(/# my-wagate-shop\/kustomization\.yaml/);
      expect(built.filter((o) => o.metadata.namespace !== 'shop').map((o) => `${o.kind}/${o.metadata.name}`)).toEqual([]);
      const binding = built.find((o) => o.kind === 'RoleBinding')!;
      expect(binding.subjects).toEqual([expect.objectContaining({ kind: 'ServiceAccount', namespace: 'shop' })]);
      // The monitors look in their own namespace; one that named wagate scraped nothing after the move.
      for (const monitor of built.filter((o) => o.kind === 'ServiceMonitor' || o.kind === 'PodMonitor')) expect(monitor.spec.namespaceSelector).toBeUndefined();
      kubectl(['create', 'namespace', 'shop']);
      expect(dryRunServer('shop', built)).toMatch(/\(server dry run\)/);
    });

    it('applies the settings, then the migration Job\'s objects, alone, with the selectors docs/operations.md shows for a plain kubectl install', () => {
      const docs = readFileSync(path.join(ROOT, 'docs', 'operations.md'), 'utf8');
      const block = /```sh\n(kubectl kustomize k8s\/overlays\/production > wagate\.yaml\n[\s\S]*?)```/.exec(docs)?.[1];
      const selectors = [...(block ?? '').matchAll(/^kubectl apply -f wagate\.yaml -l (?:'([^']+)'|(\S+))/gm)].map((match) => match[1] ?? match[2]!);
      expect(selectors).toHaveLength(2);
      const dir = mkdtempSync(path.join(os.tmpdir(), 'wagate-plain-'));
      const file = path.join(dir, 'wagate.yaml');
      const inNamespace = () => kubectl(['-n', 'wagate', 'get', 'configmap,networkpolicy,serviceaccount,job,deployment', '-o', 'name']).trim().split('\n').filter(Boolean)
        .filter((name) => !name.endsWith('/default') && !name.endsWith('/kube-root-ca.crt')).sort();
      try {
        writeFileSync(file, kubectl(['kustomize', path.join(ROOT, K8S_VARIANTS.production)]));
        kubectl(['apply', '-f', file, '-l', selectors[0]!]);
        // The settings the Job reads, and the production overlay's dashboard: nothing that runs.
        expect(inNamespace()).toEqual(['configmap/wagate-config', 'configmap/wagate-dashboard']);
        kubectl(['apply', '-f', file, '-l', selectors[1]!]);
        expect(inNamespace()).toEqual(['configmap/wagate-config', 'configmap/wagate-dashboard', 'job.batch/wagate-migrate',
          'networkpolicy.networking.k8s.io/wagate-migrate', 'serviceaccount/wagate-migrate']);
      } finally {
        kubectl(['-n', 'wagate', 'delete', '-f', file, '--ignore-not-found', '--wait=false']);
        rmSync(dir, { recursive: true, force: true });
      }
    });

    it.each(Object.entries(K8S_VARIANTS))('builds %s with kubectl kustomize into the objects the chart renders with k8s/values, and the server accepts them', (variant, dir) => {
      const built = parseObjects(kubectl(['kustomize', path.join(ROOT, dir)]));
      const chart = parseObjects(renderText({ releaseName: 'wagate', namespace: 'wagate', valuesFiles: [path.join(ROOT, 'k8s', 'values', `${variant}.yaml`)], apiVersions: GATED_API_VERSIONS.filter((api) => !api.endsWith('PodMonitor')) }));
      const hooksless = chart.filter((o) => o.kind !== 'Secret' || !o.metadata.annotations?.['helm.sh/hook']);
      expect(Object.keys(normalise(built)).sort()).toEqual(Object.keys(normalise(hooksless)).sort());
      expect(normalise(built)).toEqual(normalise(hooksless));
      expect(built.every((o) => o.metadata.namespace === 'wagate')).toBe(true);
      expect(dryRunServer('wagate', built)).toMatch(/\(server dry run\)/);
    });
  });
});
