import { podTemplates, renderScenario, type K8sObject } from './helm';

const componentOf = (object: K8sObject) => object.metadata.labels!['app.kubernetes.io/component']!;
const TOLERATION = { key: 'dedicated', operator: 'Equal', value: 'wagate', effect: 'NoSchedule' };
const AFFINITY = { nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: [{ matchExpressions: [{ key: 'pool', operator: 'In', values: ['wagate'] }] }] } } };

/** The values that place one role's pods on a dedicated, tainted node pool, with a mesh opt-out. */
const placing = (role: string) => [
  `${role}.nodeSelector.pool=wagate`,
  `${role}.tolerations[0].key=dedicated`,
  `${role}.tolerations[0].operator=Equal`,
  `${role}.tolerations[0].value=wagate`,
  `${role}.tolerations[0].effect=NoSchedule`,
  `${role}.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchExpressions[0].key=pool`,
  `${role}.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchExpressions[0].operator=In`,
  `${role}.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchExpressions[0].values[0]=wagate`,
];

describe('pod placement', () => {
  it.each([
    ['migrations', 'migrate'],
    ['cleanup', 'cleanup'],
    ['ingest', 'ingest'],
    ['worker', 'worker'],
    ['autoscaler', 'autoscaler'],
  ])('gives %s pods their nodeSelector, tolerations, affinity and podAnnotations, and no other role\'s pods', (values, role) => {
    const objects = renderScenario('minimal', { set: placing(values), setString: [`${values}.podAnnotations.sidecar\\.istio\\.io/inject=false`] });
    const templates = podTemplates(objects);
    expect(templates.map(({ owner }) => componentOf(owner)).sort()).toEqual(['autoscaler', 'cleanup', 'ingest', 'migrate', 'worker']);
    for (const { owner, pod } of templates) {
      const placed = componentOf(owner) === role;
      const placement = { nodeSelector: pod.spec.nodeSelector, tolerations: pod.spec.tolerations, affinity: pod.spec.affinity };
      expect([componentOf(owner), placement]).toEqual([
        componentOf(owner),
        placed ? { nodeSelector: { pool: 'wagate' }, tolerations: [TOLERATION], affinity: AFFINITY } : { nodeSelector: undefined, tolerations: undefined, affinity: undefined },
      ]);
      expect([componentOf(owner), pod.metadata.annotations?.['sidecar.istio.io/inject']]).toEqual([componentOf(owner), placed ? 'false' : undefined]);
    }
  });

  it('keeps the cleanup pods\' checksums beside their own annotations', () => {
    const objects = renderScenario('minimal', { set: ['cleanup.podAnnotations.team=payments'] });
    const cleanup = podTemplates(objects).find(({ owner }) => componentOf(owner) === 'cleanup')!;
    expect(Object.keys(cleanup.pod.metadata.annotations).sort()).toEqual(['checksum/config', 'checksum/secret', 'team']);
  });
});

describe('the Cluster Autoscaler', () => {
  const KEY = 'cluster-autoscaler.kubernetes.io/safe-to-evict-local-volumes';

  it('may move the Deployments\' pods off a node despite their emptyDir, and not a Job\'s mid-run', () => {
    const templates = podTemplates(renderScenario('production'));
    expect(templates.map(({ owner }) => componentOf(owner)).sort()).toEqual(['autoscaler', 'cleanup', 'ingest', 'migrate', 'worker']);
    for (const { owner, pod } of templates) {
      const emptyDirs = (pod.spec.volumes ?? []).filter((volume: { emptyDir?: unknown }) => volume.emptyDir).map((volume: { name: string }) => volume.name);
      expect([componentOf(owner), emptyDirs]).toEqual([componentOf(owner), ['tmp']]);
      const evictable = owner.kind === 'Deployment' ? emptyDirs.join(',') : undefined;
      expect([componentOf(owner), pod.metadata.annotations?.[KEY]]).toEqual([componentOf(owner), evictable]);
    }
  });

  it('leaves the key to podAnnotations that set it', () => {
    const objects = renderScenario('minimal', { setString: [`worker.podAnnotations.${KEY.replace(/\./g, '\\.')}=`] });
    const worker = podTemplates(objects).find(({ owner }) => componentOf(owner) === 'worker')!;
    expect(worker.pod.metadata.annotations[KEY]).toBe('');
  });
});

describe('commonLabels', () => {
  it('reaches every pod, the migration hook\'s and the cleanup\'s included, in every mode', () => {
    for (const mode of ['builtin', 'keda', 'hpa', 'off']) {
      const objects = renderScenario('keda', { set: [`worker.autoscaling.mode=${mode}`, 'commonLabels.team=payments', 'commonLabels.cost-centre=cc-42'] });
      for (const { owner, pod } of podTemplates(objects)) {
        expect([mode, owner.metadata.name, pod.metadata.labels]).toEqual([mode, owner.metadata.name, expect.objectContaining({ team: 'payments', 'cost-centre': 'cc-42' })]);
      }
      for (const object of objects) expect([object.kind, object.metadata.labels]).toEqual([object.kind, expect.objectContaining({ team: 'payments' })]);
    }
  });

  it('never repeats or replaces one of the chart\'s own labels', () => {
    const own = ['app.kubernetes.io/name', 'app.kubernetes.io/instance', 'app.kubernetes.io/part-of', 'app.kubernetes.io/component', 'app.kubernetes.io/managed-by', 'wagate.io/job', 'wagate.io/metrics', 'grafana_dashboard'];
    const dashboard = 'metrics.dashboard.enabled=true';
    const plain = renderScenario('minimal', { set: [dashboard] });
    // Every one of those keys is on some object, so each is checked.
    for (const key of own) expect([key, plain.some((object) => object.metadata.labels?.[key] !== undefined)]).toEqual([key, true]);
    // Rendered YAML with a key twice does not parse: renderScenario would throw.
    const objects = renderScenario('minimal', { set: [dashboard, ...own.map((key) => `commonLabels.${key.replace(/\./g, '\\.')}=theirs`), 'commonLabels.team=payments'] });
    expect(objects.map((object) => object.metadata.labels)).toEqual(plain.map((object) => ({ ...object.metadata.labels, team: 'payments' })));
  });

  it('gives way to a monitoring object\'s additionalLabels of the same key, once, which never replace the chart\'s own', () => {
    // Each monitoring object's selector label (release: for Prometheus, a folder label for Grafana's
    // sidecar) may also be a common label: the key was rendered twice, which does not parse.
    const additional = (object: string) => [
      `metrics.${object}.additionalLabels.team=monitoring`,
      `metrics.${object}.additionalLabels.app\\.kubernetes\\.io/instance=theirs`,
    ];
    const labelsOf = (objects: K8sObject[], kinds: string[]) =>
      Object.fromEntries(objects.filter((object) => kinds.includes(object.kind) && (object.kind !== 'ConfigMap' || object.metadata.name.endsWith('-dashboard'))).map((object) => [object.kind, object.metadata.labels]));
    const instance = renderScenario('minimal').find((object) => object.kind === 'Deployment')!.metadata.labels!['app.kubernetes.io/instance'];
    const expected = (extra: Record<string, string> = {}) => expect.objectContaining({ team: 'monitoring', 'app.kubernetes.io/instance': instance, ...extra });
    const withServiceMonitor = renderScenario('minimal', {
      set: [
        'commonLabels.team=payments',
        'metrics.serviceMonitor.enabled=true', 'metrics.prometheusRule.enabled=true', 'metrics.dashboard.enabled=true',
        ...['serviceMonitor', 'prometheusRule', 'dashboard'].flatMap(additional),
        'metrics.dashboard.additionalLabels.grafana_dashboard=shop',
      ],
    });
    expect(labelsOf(withServiceMonitor, ['ServiceMonitor', 'PrometheusRule', 'ConfigMap'])).toEqual({
      ServiceMonitor: expected(),
      PrometheusRule: expected(),
      ConfigMap: expected({ grafana_dashboard: 'shop' }),
    });
    const withPodMonitor = renderScenario('minimal', { set: ['commonLabels.team=payments', 'metrics.podMonitor.enabled=true', ...additional('podMonitor')] });
    expect(labelsOf(withPodMonitor, ['PodMonitor'])).toEqual({ PodMonitor: expected() });
  });

  it('keeps every Deployment\'s selector matching its pods', () => {
    const objects = renderScenario('minimal', { set: ['commonLabels.team=payments'] });
    for (const deployment of objects.filter((object) => object.kind === 'Deployment')) {
      expect(deployment.spec.template.metadata.labels).toEqual(expect.objectContaining(deployment.spec.selector.matchLabels));
    }
  });
});
