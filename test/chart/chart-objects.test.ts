import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { DEFAULT_REPLY_TEXTS_DIR as REPLY_TEXTS, loadReplyCatalogues } from '../../src/orders/replies';
import { parse } from 'yaml';
import { CHART_DIR, SCENARIOS, find, helm, kinds, renderError, renderScenario, scenarioFile, type K8sObject } from './helm';

const byScenario = Object.fromEntries(SCENARIOS.map((scenario) => [scenario, renderScenario(scenario)])) as Record<(typeof SCENARIOS)[number], K8sObject[]>;
const minimal = byScenario.minimal;
const production = byScenario.production;
const keda = byScenario.keda;
const envOf = (container: any): Record<string, any> => Object.fromEntries((container.env ?? []).map((e: any) => [e.name, e]));

describe('the chart renders every ci scenario', () => {
  it.each(SCENARIOS)('passes helm lint --strict with ci/%s-values.yaml', (scenario) => {
    const result = helm(['lint', '--strict', CHART_DIR, '-f', scenarioFile(scenario)]);
    expect(`${result.stdout}${result.stderr}`).toContain('1 chart(s) linted, 0 chart(s) failed');
    expect(result.status).toBe(0);
  });

  it.each([
    ['worker.autoscaling.mode=off'],
    ['worker.autoscaling.mode=hpa'],
    ['ingest.autoscaling.enabled=false,networkPolicy.enabled=false,cleanup.enabled=false,migrations.enabled=false,ingest.podDisruptionBudget.enabled=false,worker.podDisruptionBudget.enabled=false'],
    ['metrics.serviceMonitor.enabled=true,metrics.prometheusRule.enabled=true,metrics.dashboard.enabled=true'],
    ['metrics.podMonitor.enabled=true,metrics.prometheusRule.enabled=true,metrics.dashboard.enabled=true'],
  ])('passes helm lint --strict with ci/minimal-values.yaml and %s', (set) => {
    const result = helm(['lint', '--strict', CHART_DIR, '-f', scenarioFile('minimal'), '--set', set]);
    expect([result.status, result.status === 0 ? '' : result.stdout]).toEqual([0, '']);
  });

  it('renders the same object set for ingest and worker in every scenario', () => {
    for (const objects of Object.values(byScenario)) {
      for (const [kind, name] of [['Deployment', 'ingest'], ['Service', 'ingest'], ['Deployment', 'worker'], ['PodDisruptionBudget', 'worker'], ['Job', 'migrate'], ['CronJob', 'cleanup']] as const) {
        expect(find(objects, kind, `-${name}`)).toBeDefined();
      }
    }
  });
});

describe('ingest', () => {
  const deployment = find(minimal, 'Deployment', '-ingest');

  it('has no replicas field while its CPU HorizontalPodAutoscaler is on, and a PDB', () => {
    expect(deployment.spec).not.toHaveProperty('replicas');
    const hpa = find(minimal, 'HorizontalPodAutoscaler', '-ingest');
    expect(hpa.spec.scaleTargetRef).toEqual({ apiVersion: 'apps/v1', kind: 'Deployment', name: deployment.metadata.name });
    expect(hpa.spec.metrics[0].resource).toEqual({ name: 'cpu', target: { type: 'Utilization', averageUtilization: 70 } });
    // Down by half at most a minute, after five calm minutes; up at the HPA's own pace.
    expect(hpa.spec.behavior).toEqual({ scaleDown: { stabilizationWindowSeconds: 300, policies: [{ type: 'Percent', value: 50, periodSeconds: 60 }] } });
    const hpaDefaults = find(renderScenario('minimal', { set: ['ingest.autoscaling.behavior=null'] }), 'HorizontalPodAutoscaler', '-ingest');
    expect(hpaDefaults.spec).not.toHaveProperty('behavior');
    // One pod at a time, however many the HPA runs: minAvailable 1 let a drain take 9 of 10.
    const budget = find(minimal, 'PodDisruptionBudget', '-ingest').spec;
    expect([budget.maxUnavailable, budget.minAvailable]).toEqual([1, undefined]);
    const floor = find(renderScenario('minimal', { set: ['ingest.podDisruptionBudget.minAvailable=1'] }), 'PodDisruptionBudget', '-ingest').spec;
    expect([floor.maxUnavailable, floor.minAvailable]).toEqual([undefined, 1]);
  });

  // Workers on one node lose every shard with it; the autoscaler's leader and standby on one node stop all scaling with it.
  it.each(['-ingest', '-worker', '-autoscaler'])('spreads the pods of %s across zones and nodes, as a preference', (role) => {
    const spread = find(minimal, 'Deployment', role);
    const constraints = spread.spec.template.spec.topologySpreadConstraints;
    expect(constraints.map((c: any) => [c.topologyKey, c.whenUnsatisfiable])).toEqual([
      ['topology.kubernetes.io/zone', 'ScheduleAnyway'],
      ['kubernetes.io/hostname', 'ScheduleAnyway'],
    ]);
    for (const constraint of constraints) expect(constraint.labelSelector.matchLabels).toEqual(spread.spec.selector.matchLabels);
    const off = find(renderScenario('minimal', { set: [`${role.slice(1)}.topologySpread.enabled=false`] }), 'Deployment', role);
    expect(off.spec.template.spec.topologySpreadConstraints).toBeUndefined();
  });

  it('probes /healthz and /readyz on the public port, and its Service points there', () => {
    const container = deployment.spec.template.spec.containers[0];
    expect(container.args).toEqual(['ingest']);
    expect(container.ports).toEqual([{ name: 'http', containerPort: 3000 }, { name: 'metrics', containerPort: 9464 }]);
    expect(container.livenessProbe.httpGet).toEqual({ path: '/healthz', port: 'http' });
    expect(container.readinessProbe.httpGet).toEqual({ path: '/readyz', port: 'http' });
    expect(find(minimal, 'Service', '-ingest').spec.ports[0].targetPort).toBe('http');
  });
});

describe('worker', () => {
  const worker = (objects: K8sObject[]) => find(objects, 'Deployment', '-worker');

  it('has no replicas field in every autoscaled mode, and worker.replicas when off', () => {
    for (const mode of ['builtin', 'keda', 'hpa']) {
      const objects = renderScenario('keda', { set: [`worker.autoscaling.mode=${mode}`] });
      expect(worker(objects).spec).not.toHaveProperty('replicas');
    }
    expect(worker(renderScenario('minimal', { set: ['worker.autoscaling.mode=off', 'worker.replicas=3'] })).spec.replicas).toBe(3);
  });

  it('gives the ingest a grace period that covers its whole stop, whatever SHUTDOWN_TIMEOUT_MS', () => {
    for (const shutdownMs of [25000, 25900, 100]) {
      const pod = find(renderScenario('minimal', { set: [`config.SHUTDOWN_TIMEOUT_MS=${shutdownMs}`] }), 'Deployment', '-ingest').spec.template.spec;
      const preStopSeconds = Number(pod.containers[0].lifecycle.preStop.sleep?.seconds ?? /sleep (\d+)/.exec(pod.containers[0].lifecycle.preStop.exec?.command.join(' '))?.[1]);
      // After the requests: at most 8 s of commits, publishes and closes, then 1.5 s for the spans.
      expect(pod.terminationGracePeriodSeconds * 1000).toBeGreaterThanOrEqual(preStopSeconds * 1000 + shutdownMs + 9500);
    }
  });

  it('has a PodDisruptionBudget of maxUnavailable 1', () => {
    expect(find(minimal, 'PodDisruptionBudget', '-worker').spec).toMatchObject({ maxUnavailable: 1 });
  });

  it('passes its drain bound and gets a longer grace period', () => {
    for (const [objects, drainSeconds] of [[minimal, 60], [production, 90]] as const) {
      const pod = worker(objects).spec.template.spec;
      expect(envOf(pod.containers[0]).WORKER_DRAIN_TIMEOUT_MS.value).toBe(String(drainSeconds * 1000));
      expect(pod.terminationGracePeriodSeconds).toBeGreaterThan(drainSeconds);
    }
  });

  it('runs with a young generation of its own (worker.nodeOptions), while the ingest keeps the image\'s', () => {
    const workerEnv = envOf(worker(minimal).spec.template.spec.containers[0]);
    expect(workerEnv.NODE_OPTIONS).toEqual({ name: 'NODE_OPTIONS', value: '--max-semi-space-size=64' });
    expect(envOf(find(minimal, 'Deployment', '-ingest').spec.template.spec.containers[0])).not.toHaveProperty('NODE_OPTIONS');
    const imageDefault = renderScenario('minimal', { set: ['worker.nodeOptions='] });
    expect(envOf(worker(imageDefault).spec.template.spec.containers[0])).not.toHaveProperty('NODE_OPTIONS');
    const own = renderScenario('minimal', { set: ['worker.nodeOptions=--max-semi-space-size=32 --max-old-space-size=384'] });
    expect(envOf(worker(own).spec.template.spec.containers[0]).NODE_OPTIONS.value).toBe('--max-semi-space-size=32 --max-old-space-size=384');
  });

  it('mounts a shop\'s own reply texts (worker.replyTexts, all four files) as REPLY_TEXTS_DIR, which the worker reads', () => {
    const languages = ['en', 'es', 'pt', 'de'];
    const shipped = (language: string) => path.join(REPLY_TEXTS, `${language}.json`);
    const objects = renderScenario('minimal', { setFile: languages.map((language) => `worker.replyTexts.${language}\\.json=${shipped(language)}`) });
    const configMap = find(objects, 'ConfigMap', '-worker-reply-texts') as K8sObject & { data: Record<string, string> };
    expect(Object.keys(configMap.data).sort()).toEqual(['de.json', 'en.json', 'es.json', 'pt.json']);
    expect(configMap.data['en.json']).toBe(readFileSync(shipped('en'), 'utf8'));
    const pod = worker(objects).spec.template.spec;
    expect(envOf(pod.containers[0]).REPLY_TEXTS_DIR.value).toBe('/etc/wagate/reply-texts');
    expect(pod.containers[0].volumeMounts).toContainEqual({ name: 'reply-texts', mountPath: '/etc/wagate/reply-texts', readOnly: true });
    expect(pod.volumes).toContainEqual({ name: 'reply-texts', configMap: { name: configMap.metadata.name } });
    // A change of texts rolls the workers, which read them only at start.
    expect(worker(objects).spec.template.metadata.annotations['checksum/reply-texts']).toMatch(/^[0-9a-f]{64}$/);
    // What the ConfigMap holds is what the worker accepts.
    const mounted = mkdtempSync(path.join(tmpdir(), 'wagate-reply-texts-'));
    for (const [file, text] of Object.entries(configMap.data as Record<string, string>)) writeFileSync(path.join(mounted, file), text);
    expect(loadReplyCatalogues(mounted)).toEqual(loadReplyCatalogues());
    // The ingest and the default install have none of it.
    expect(find(objects, 'Deployment', '-ingest').spec.template.spec.containers[0].volumeMounts).toEqual([{ name: 'tmp', mountPath: '/tmp' }]);
    expect(minimal.find((object) => object.metadata.name.endsWith('-reply-texts'))).toBeUndefined();
    expect(envOf(worker(minimal).spec.template.spec.containers[0])).not.toHaveProperty('REPLY_TEXTS_DIR');
  });

  it('refuses REPLY_TEXTS_DIR in an extraEnv beside worker.replyTexts, which would hide the mounted texts', () => {
    const files = ['en', 'es', 'pt', 'de'].map((language) => `worker.replyTexts.${language}\\.json=${path.join(REPLY_TEXTS, `${language}.json`)}`);
    const error = renderError({ valuesFiles: [scenarioFile('minimal')], setFile: files, set: ['worker.extraEnv[0].name=REPLY_TEXTS_DIR', 'worker.extraEnv[0].value=/texts'] });
    expect(error).toContain('REPLY_TEXTS_DIR is in extraEnv or worker.extraEnv while worker.replyTexts mounts the texts');
  });

  it('refuses reply texts that leave out a language, which the worker would refuse at start', () => {
    const error = renderError({ valuesFiles: [scenarioFile('minimal')], setFile: [`worker.replyTexts.en\\.json=${path.join(REPLY_TEXTS, 'en.json')}`] });
    expect(error).toMatch(/replyTexts/);
  });

  it('refuses NODE_OPTIONS in extraEnv beside worker.nodeOptions, which would give worker pods the variable twice', () => {
    const twice = 'while worker.nodeOptions sets it for worker pods too';
    expect(renderError({ valuesFiles: [scenarioFile('minimal')], set: ['worker.extraEnv[0].name=NODE_OPTIONS', 'worker.extraEnv[0].value=--max-semi-space-size=8'] })).toContain(twice);
    expect(renderError({ valuesFiles: [scenarioFile('minimal')], set: ['extraEnv[0].name=NODE_OPTIONS', 'extraEnv[0].value=--max-semi-space-size=8'] })).toContain(twice);
    const fromExtraEnv = renderScenario('minimal', { set: ['worker.nodeOptions=', 'extraEnv[0].name=NODE_OPTIONS', 'extraEnv[0].value=--max-semi-space-size=8'] });
    const workerEnv = worker(fromExtraEnv).spec.template.spec.containers[0].env.filter((e: any) => e.name === 'NODE_OPTIONS');
    expect(workerEnv).toEqual([{ name: 'NODE_OPTIONS', value: '--max-semi-space-size=8' }]);
  });

  it('refuses, in any extraEnv, a variable from which the chart derives ports or grace periods, naming the value to set instead', () => {
    const cases: Array<[string, string, string]> = [
      ['extraEnv', 'SHUTDOWN_TIMEOUT_MS', 'config.SHUTDOWN_TIMEOUT_MS'],
      ['ingest.extraEnv', 'PORT', 'config.PORT'],
      ['autoscaler.extraEnv', 'METRICS_PORT', 'config.METRICS_PORT'],
      ['worker.extraEnv', 'WORKER_DRAIN_TIMEOUT_MS', 'worker.drainTimeoutSeconds'],
      ['autoscaler.extraEnv', 'AUTOSCALER_MAX_REPLICAS', 'worker.autoscaling.maxReplicas'],
      // KEDA's trigger watches config's queues: a prefix or a count that only the pods see would scale on nothing.
      ['extraEnv', 'QUEUE_PREFIX', 'config.QUEUE_PREFIX'],
      ['worker.extraEnv', 'WORK_SHARDS', 'config.WORK_SHARDS'],
    ];
    for (const [list, name, instead] of cases) {
      const error = renderError({ valuesFiles: [scenarioFile('minimal')], set: [`${list}[0].name=${name}`, `${list}[0].value=60000`] });
      expect([list, name, error]).toEqual([list, name, expect.stringContaining(`${name} is set in an extraEnv: set ${instead} instead`)]);
    }
    const unrelated = renderScenario('minimal', { set: ['worker.extraEnv[0].name=TZ', 'worker.extraEnv[0].value=Europe/Berlin'] });
    expect(envOf(worker(unrelated).spec.template.spec.containers[0]).TZ.value).toBe('Europe/Berlin');
  });

  it('refuses the autoscaler\'s identity, lease and target in an extraEnv: a shared identity would make two leaders', () => {
    for (const [list, name] of [['autoscaler.extraEnv', 'AUTOSCALER_IDENTITY'], ['extraEnv', 'AUTOSCALER_LEASE_NAME'], ['autoscaler.extraEnv', 'AUTOSCALER_DEPLOYMENT'], ['extraEnv', 'AUTOSCALER_NAMESPACE']]) {
      const error = renderError({ valuesFiles: [scenarioFile('minimal')], set: [`${list}[0].name=${name}`, `${list}[0].value=wagate`] });
      expect([list, name, error]).toEqual([list, name, expect.stringContaining(`${name} is set in an extraEnv: the chart sets it from the autoscaler's pod and the release`)]);
    }
  });

  it('is probed on METRICS_PORT /healthz and /readyz', () => {
    const container = worker(minimal).spec.template.spec.containers[0];
    expect(container.args).toEqual(['worker']);
    expect(container.livenessProbe.httpGet).toEqual({ path: '/healthz', port: 'metrics' });
    expect(container.readinessProbe.httpGet).toEqual({ path: '/readyz', port: 'metrics' });
  });

  it('gets a CPU HorizontalPodAutoscaler with at least one replica in mode hpa', () => {
    const hpa = find(renderScenario('minimal', { set: ['worker.autoscaling.mode=hpa'] }), 'HorizontalPodAutoscaler', '-worker');
    expect(hpa.spec.minReplicas).toBeGreaterThanOrEqual(1);
    expect(hpa.spec.scaleTargetRef.name).toBe(worker(minimal).metadata.name);
  });
});

describe('the migration hook', () => {
  const migrateContainer = (objects: K8sObject[]) => find(objects, 'Job', '-migrate').spec.template.spec.containers[0];

  it('connects the pods\' way by default, from the chart\'s Secret', () => {
    expect(envOf(migrateContainer(minimal)).DATABASE_URL.valueFrom.secretKeyRef.key).toBe('DATABASE_URL');
  });

  it('connects through migrations.databaseUrlFrom instead, variable or files, so it can bypass PgBouncer', () => {
    for (const asFiles of ['false', 'true']) {
      const objects = renderScenario('minimal', { set: ['migrations.databaseUrlFrom.name=direct-db', 'migrations.databaseUrlFrom.key=url', `secrets.asFiles=${asFiles}`] });
      const job = find(objects, 'Job', '-migrate');
      const env = envOf(job.spec.template.spec.containers[0]);
      expect([asFiles, env.DATABASE_URL.valueFrom.secretKeyRef]).toEqual([asFiles, { name: 'direct-db', key: 'url' }]);
      // Only the one address: no DATABASE_URL_FILE beside it, which wagate would refuse.
      expect([asFiles, Object.keys(env).filter((name) => name.startsWith('DATABASE_URL'))]).toEqual([asFiles, ['DATABASE_URL']]);
      expect([asFiles, (job.spec.template.spec.volumes ?? []).map((volume: any) => volume.name)]).toEqual([asFiles, ['tmp']]);
      // Nor the hook Secret that would hold the pods' address for it.
      expect([asFiles, objects.filter((object: any) => object.kind === 'Secret' && object.metadata.name.endsWith('-migrate'))]).toEqual([asFiles, []]);
      // The pods still connect their way.
      expect(envOf(find(objects, 'Deployment', '-ingest').spec.template.spec.containers[0]).DATABASE_URL?.valueFrom.secretKeyRef.key ?? 'as a file').not.toBe('url');
    }
  });

  it('refuses a databaseUrlFrom without its key', () => {
    expect(renderError({ valuesFiles: [scenarioFile('minimal')], set: ['migrations.databaseUrlFrom.name=direct-db'] })).toMatch(/databaseUrlFrom/);
  });
});

describe('the builtin autoscaler', () => {
  const deployment = find(minimal, 'Deployment', '-autoscaler');

  it('runs `autoscaler` twice with its ServiceAccount token and the table of AUTOSCALER_* settings', () => {
    expect(deployment.spec.replicas).toBe(2);
    const pod = deployment.spec.template.spec;
    expect(pod.automountServiceAccountToken).toBe(true);
    expect(find(minimal, 'ServiceAccount', '-autoscaler').automountServiceAccountToken).toBe(true);
    const env = envOf(pod.containers[0]);
    expect(pod.containers[0].args).toEqual(['autoscaler']);
    expect(env.AUTOSCALER_DEPLOYMENT.value).toBe(find(minimal, 'Deployment', '-worker').metadata.name);
    expect(env.AUTOSCALER_NAMESPACE.valueFrom.fieldRef.fieldPath).toBe('metadata.namespace');
    expect(env.AUTOSCALER_IDENTITY.valueFrom.fieldRef.fieldPath).toBe('metadata.name');
    expect(env.AUTOSCALER_LEASE_NAME.value).toBe(`${env.AUTOSCALER_DEPLOYMENT.value}-autoscaler`);
    const expected = { TARGET_PER_REPLICA: '100', MIN_REPLICAS: '1', MAX_REPLICAS: '16', INTERVAL_SECONDS: '10', SCALE_DOWN_STABILIZATION_SECONDS: '300', MANUAL_HOLD_SECONDS: '1800', LEASE_DURATION_SECONDS: '15', RENEW_DEADLINE_SECONDS: '10', RETRY_PERIOD_SECONDS: '2' };
    for (const [name, value] of Object.entries(expected)) expect([name, env[`AUTOSCALER_${name}`]?.value]).toEqual([name, value]);
    expect(pod.containers[0].readinessProbe.httpGet).toEqual({ path: '/readyz', port: 'metrics' });
  });

  it('gives a stop the time to finish a Lease try and hand the Lease back, each up to the renew deadline', () => {
    expect(deployment.spec.template.spec.terminationGracePeriodSeconds).toBe(30);
    const slow = renderScenario('minimal', { set: ['autoscaler.leaseDurationSeconds=60', 'autoscaler.renewDeadlineSeconds=40'] });
    expect(find(slow, 'Deployment', '-autoscaler').spec.template.spec.terminationGracePeriodSeconds).toBe(2 * 40 + 10);
  });

  it('may scale and annotate only the worker Deployment, hold Leases and write Events: no wildcards, no ClusterRole', () => {
    const role = find(minimal, 'Role', '-autoscaler');
    const workerName = find(minimal, 'Deployment', '-worker').metadata.name;
    expect(role.rules).toEqual([
      { apiGroups: ['apps'], resources: ['deployments'], resourceNames: [workerName], verbs: ['get', 'patch'] },
      { apiGroups: ['coordination.k8s.io'], resources: ['leases'], resourceNames: [`${workerName}-autoscaler`], verbs: ['get', 'update'] },
      { apiGroups: ['coordination.k8s.io'], resources: ['leases'], verbs: ['create'] },
      { apiGroups: [''], resources: ['events'], verbs: ['create'] },
    ]);
    const binding = find(minimal, 'RoleBinding', '-autoscaler');
    expect(binding.subjects).toEqual([{ kind: 'ServiceAccount', name: find(minimal, 'ServiceAccount', '-autoscaler').metadata.name, namespace: 'wagate' }]);
    for (const objects of Object.values(byScenario)) {
      expect(objects.filter((o) => o.kind.startsWith('Cluster'))).toEqual([]);
      expect(JSON.stringify(objects.filter((o) => o.kind === 'Role'))).not.toContain('"*"');
    }
  });

  it('is absent, with its RBAC, in every other mode', () => {
    for (const objects of [keda, renderScenario('minimal', { set: ['worker.autoscaling.mode=off'] })]) {
      expect(kinds(objects).filter((name) => name.includes('autoscaler'))).toEqual([]);
    }
  });
});

describe('KEDA mode', () => {
  const scaled = find(keda, 'ScaledObject', '-worker');

  it('scales the worker between at least one and WORK_SHARDS on the summed backlog of every shard', () => {
    expect(scaled.spec.scaleTargetRef.name).toBe(find(keda, 'Deployment', '-worker').metadata.name);
    expect(scaled.spec.minReplicaCount).toBeGreaterThanOrEqual(1);
    expect(scaled.spec.maxReplicaCount).toBe(32);
    const [trigger] = scaled.spec.triggers;
    expect(trigger.type).toBe('rabbitmq');
    expect(trigger.metadata).toMatchObject({ protocol: 'http', mode: 'QueueLength', useRegex: 'true', operation: 'sum', value: '200', pageSize: '100' });
    const queues = new RegExp(trigger.metadata.queueName);
    expect(['wagate.work.0', 'wagate.work.31'].every((q) => queues.test(q))).toBe(true);
    expect(['wagate.dead', 'wagate.retry.5000ms', 'wagatexwork.1', 'other.work.1'].some((q) => queues.test(q))).toBe(false);
  });

  it('asks for every shard queue in one page of the management API, beyond KEDA\'s 100 too', () => {
    const many = find(renderScenario('keda', { set: ['config.WORK_SHARDS=256', 'worker.autoscaling.maxReplicas=256'] }), 'ScaledObject', '-worker');
    expect(many.spec.triggers[0].metadata.pageSize).toBe('256');
  });

  it('keeps the HPA\'s scale-up period within the 1800 s the API server accepts, whatever the polling interval', () => {
    const periodOf = (interval: number) => find(renderScenario('keda', { set: [`worker.autoscaling.keda.pollingInterval=${interval}`] }), 'ScaledObject', '-worker')
      .spec.advanced.horizontalPodAutoscalerConfig.behavior.scaleUp.policies[0].periodSeconds;
    expect([periodOf(30), periodOf(3600)]).toEqual([30, 1800]);
  });

  it('authenticates through the Secret key RABBITMQ_MANAGEMENT_URL', () => {
    const auth = find(keda, 'TriggerAuthentication', '-worker');
    expect(scaled.spec.triggers[0].authenticationRef.name).toBe(auth.metadata.name);
    expect(auth.spec.secretTargetRef).toEqual([{ parameter: 'host', name: find(keda, 'Secret', 'shop-wagate').metadata.name, key: 'RABBITMQ_MANAGEMENT_URL' }]);
  });
});

describe('metrics and monitoring', () => {
  const alerts = parse(readFileSync(path.join(CHART_DIR, 'files', 'alerts.yaml'), 'utf8'));
  // Each distinct job selector once (a "down" alert names its job three times).
  const jobRegexes: RegExp[] = [...new Set([...JSON.stringify(alerts).matchAll(/job=~\\"([^\\]+)\\"/g)].map((m) => m[1]!))].map((job) => new RegExp(`^(?:${job})$`));

  it('gives every long-running role a metrics Service with a fixed job label, which the ServiceMonitor uses', () => {
    const services = production.filter((o) => o.kind === 'Service' && o.metadata.labels?.['wagate.io/metrics'] === 'true');
    expect(services.map((s) => s.metadata.labels!['wagate.io/job']).sort()).toEqual(['wagate-autoscaler', 'wagate-ingest', 'wagate-worker']);
    const monitor = find(production, 'ServiceMonitor', 'shop-wagate');
    expect(monitor.spec.jobLabel).toBe('wagate.io/job');
    expect(monitor.metadata.labels).toMatchObject({ release: 'kube-prometheus-stack' });
    for (const service of services) {
      expect(Object.entries(monitor.spec.selector.matchLabels).every(([k, v]) => service.metadata.labels![k] === v)).toBe(true);
      expect(service.spec.ports[0].name).toBe(monitor.spec.endpoints[0].port);
    }
  });

  it('names jobs that the two "down" alerts and the no-leader alert find', () => {
    const jobs = ['wagate-ingest', 'wagate-worker', 'wagate-autoscaler'];
    expect(jobRegexes.map((regex) => jobs.filter((job) => regex.test(job)))).toEqual([['wagate-ingest'], ['wagate-worker'], ['wagate-autoscaler']]);
  });

  it('wraps files/alerts.yaml unchanged in the PrometheusRule', () => {
    const rule = find(production, 'PrometheusRule', 'shop-wagate');
    expect(rule.spec).toEqual(alerts);
    expect(rule.metadata.labels).toMatchObject({ release: 'kube-prometheus-stack' });
  });

  it('points every runbook link at runbookBaseUrl, keeping the alert\'s anchor', () => {
    const base = 'https://wiki.shop.example/ops/wagate-runbooks';
    const rule = find(renderScenario('production', { set: [`metrics.prometheusRule.runbookBaseUrl=${base}`] }), 'PrometheusRule', 'shop-wagate');
    const links = rule.spec.groups.flatMap((group: any) => group.rules.map((r: any) => [r.alert, r.annotations.runbook_url]));
    expect(links.length).toBeGreaterThan(10);
    expect(links).toEqual(links.map(([alert]: [string]) => [alert, `${base}#${alert.toLowerCase()}`]));
    expect(renderError({ valuesFiles: [scenarioFile('production')], set: ['metrics.prometheusRule.runbookBaseUrl=runbooks.md#x'] })).toContain('runbookBaseUrl');
  });

  it('ships the dashboard in a ConfigMap labelled grafana_dashboard "1"', () => {
    const dashboard = find(production, 'ConfigMap', '-dashboard');
    expect(dashboard.metadata.labels).toMatchObject({ grafana_dashboard: '1' });
    expect(JSON.parse(dashboard.data!['wagate.json']!)).toEqual(JSON.parse(readFileSync(path.join(CHART_DIR, 'files', 'dashboard.json'), 'utf8')));
  });

  it('renders monitoring objects only when enabled and served by the cluster', () => {
    const monitoring = (objects: K8sObject[]) => objects.filter((o) => o.apiVersion.startsWith('monitoring.coreos.com')).map((o) => o.kind).sort();
    expect(monitoring(production)).toEqual(['PrometheusRule', 'ServiceMonitor']);
    expect(monitoring(renderScenario('production', { apiVersions: [] }))).toEqual([]);
    expect(monitoring(minimal)).toEqual([]);
    const podMonitor = find(renderScenario('production', { set: ['metrics.serviceMonitor.enabled=false', 'metrics.podMonitor.enabled=true'] }), 'PodMonitor', 'shop-wagate');
    expect(podMonitor.spec.jobLabel).toBe('wagate.io/job');
    expect(find(production, 'Deployment', '-worker').spec.template.metadata.labels['wagate.io/job']).toBe('wagate-worker');
  });

  it('leaves the scrape timeout to Prometheus unless one is given, so a short interval keeps the ServiceMonitor valid', () => {
    const endpoint = (objects: K8sObject[]) => find(objects, 'ServiceMonitor', 'shop-wagate').spec.endpoints[0];
    // The Prometheus Operator refuses a ServiceMonitor whose timeout is longer than its interval.
    expect(endpoint(renderScenario('production', { set: ['metrics.serviceMonitor.interval=5s'] }))).toEqual({ port: 'metrics', path: '/metrics', interval: '5s' });
    expect(endpoint(renderScenario('production', { set: ['metrics.serviceMonitor.scrapeTimeout=4s'] }))).toMatchObject({ scrapeTimeout: '4s' });
    expect(endpoint(renderScenario('production', { set: ['metrics.serviceMonitor.interval=1m', 'metrics.serviceMonitor.scrapeTimeout=60000ms'] }))).toMatchObject({ scrapeTimeout: '60000ms' });
    // A leading zero would be read as octal by the chart's arithmetic: the schema refuses it.
    expect(renderError({ valuesFiles: [scenarioFile('production')], set: ['metrics.serviceMonitor.interval=060s'] })).toContain('/metrics/serviceMonitor/interval');
    // A timeout longer than the interval: refused at the render, naming both, not dropped by the operator.
    for (const [interval, timeout] of [['10s', '15s'], ['1m', '61s'], ['900ms', '1s']]) {
      expect(renderError({ valuesFiles: [scenarioFile('production')], set: [`metrics.serviceMonitor.interval=${interval}`, `metrics.serviceMonitor.scrapeTimeout=${timeout}`] }))
        .toContain(`metrics.serviceMonitor.scrapeTimeout (${timeout}) is longer than metrics.serviceMonitor.interval (${interval})`);
    }
  });
});
