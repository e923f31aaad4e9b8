import { stringify } from 'yaml';
import { startControlPlane, type ControlPlane } from '../support/control-plane';
import { waitFor } from '../support/wait';
import { renderScenario, type K8sObject } from './helm';

const budgetsOf = (objects: K8sObject[]) => objects.filter((object) => object.kind === 'PodDisruptionBudget');
const componentOf = (object: K8sObject) => object.metadata.labels!['app.kubernetes.io/component']!;

/**
 * In a Postgres or RabbitMQ outage every wagate pod reports unready. A budget that guards
 * unready pods (the default, IfHealthyBudget) then refuses every eviction, and node drains hang
 * until the outage ends.
 */
describe('the PodDisruptionBudgets', () => {
  it('let every role\'s unready pods be evicted whatever the budget', () => {
    const budgets = [...budgetsOf(renderScenario('minimal')), ...budgetsOf(renderScenario('keda'))];
    expect(budgets.map(componentOf).sort()).toEqual(['autoscaler', 'ingest', 'ingest', 'worker', 'worker']);
    for (const budget of budgets) expect([componentOf(budget), budget.spec.unhealthyPodEvictionPolicy]).toEqual([componentOf(budget), 'AlwaysAllow']);
  });

  describe('in a real API server', () => {
    let plane: ControlPlane;
    const namespace = 'drain';

    beforeAll(async () => {
      plane = await startControlPlane();
      plane.kubectl(['create', 'namespace', namespace]);
      // A pod that names no ServiceAccount is refused until the controller manager has made
      // "default" in the new namespace. Polled, not `kubectl wait`: a synchronous call that long
      // stops this process from reading the controller manager's log pipe, which fills and stalls it.
      await waitFor('the default ServiceAccount of the namespace', () => plane.kubectl(['-n', namespace, 'get', 'serviceaccount', 'default', '--ignore-not-found', '-o', 'name']).trim(), 60_000);
    }, 180_000);

    afterAll(async () => {
      await plane?.stop();
    }, 30_000);

    /** A running pod of the budget's role that fails its readiness probe, as in an outage. */
    const createUnreadyPod = (budget: K8sObject): string => {
      const name = `${componentOf(budget)}-unready`;
      const pod = { apiVersion: 'v1', kind: 'Pod', metadata: { name, labels: budget.spec.selector.matchLabels }, spec: { containers: [{ name: 'app', image: 'wagate' }] } };
      plane.kubectl(['-n', namespace, 'apply', '-f', '-'], { input: stringify(pod) });
      const status = { phase: 'Running', conditions: [{ type: 'Ready', status: 'False' }] };
      plane.kubectl(['-n', namespace, 'patch', `pod/${name}`, '--subresource=status', '--type=merge', '-p', JSON.stringify({ status })]);
      return name;
    };

    const evict = (pod: string) => {
      const eviction = { apiVersion: 'policy/v1', kind: 'Eviction', metadata: { name: pod, namespace } };
      plane.kubectl(['create', '--raw', `/api/v1/namespaces/${namespace}/pods/${pod}/eviction`, '-f', '-'], { input: JSON.stringify(eviction) });
    };

    it('evicts an unready pod of every role while none of them is ready', () => {
      const budgets = budgetsOf(renderScenario('minimal', { namespace }));
      plane.kubectl(['-n', namespace, 'apply', '-f', '-'], { input: budgets.map((budget) => `---\n${stringify(budget)}`).join('\n') });
      for (const budget of budgets) {
        const pod = createUnreadyPod(budget);
        expect(() => evict(pod)).not.toThrow();
        expect(plane.kubectl(['-n', namespace, 'get', `pod/${pod}`, '--ignore-not-found', '-o', 'name']).trim()).toBe('');
      }
    }, 60_000);
  });
});
