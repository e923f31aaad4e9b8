import { readFileSync } from 'node:fs';
import { parseAllDocuments } from 'yaml';
import { RBAC_FIXTURE, WORKER } from '../support/autoscaler';
import { find, renderScenario } from './helm';

interface Rule {
  apiGroups: string[];
  resources: string[];
  resourceNames?: string[];
  verbs: string[];
}

/** The autoscaler suite (test/kube/autoscaler.test.ts) proves the fixture's Role is enough; the chart must grant no more and no less. */
describe('the chart\'s autoscaler Role', () => {
  it('grants exactly the rules the autoscaler was tested with, for the chart\'s worker Deployment', () => {
    const objects = renderScenario('minimal');
    const worker = find(objects, 'Deployment', '-worker').metadata.name;
    const chartRules = (find(objects, 'Role', '-autoscaler') as unknown as { rules: Rule[] }).rules;
    const fixture = parseAllDocuments(readFileSync(RBAC_FIXTURE, 'utf8')).map((doc) => doc.toJS() as { kind: string; rules?: Rule[] });
    const fixtureRules = fixture.find((doc) => doc.kind === 'Role')!.rules!;
    const forWorker = (rules: Rule[], name: string) =>
      rules.map((rule) => ({
        ...rule,
        resourceNames: rule.resourceNames?.map((resource) => (resource === name ? '<worker>' : resource === `${name}-autoscaler` ? '<lease>' : resource)),
      }));
    expect(forWorker(chartRules, worker)).toEqual(forWorker(fixtureRules, WORKER));
  });
});

describe('the chart\'s write guard for the autoscaler', () => {
  const guardKinds = (objects: ReturnType<typeof renderScenario>) => objects.filter((o) => o.kind.startsWith('ValidatingAdmissionPolicy')).map((o) => o.kind).sort();

  it('comes with the builtin autoscaler only, bound to its policy, and can be left out', () => {
    const objects = renderScenario('minimal');
    expect(guardKinds(objects)).toEqual(['ValidatingAdmissionPolicy', 'ValidatingAdmissionPolicyBinding']);
    const policy = objects.find((o) => o.kind === 'ValidatingAdmissionPolicy')!;
    const binding = objects.find((o) => o.kind === 'ValidatingAdmissionPolicyBinding')!;
    expect(binding.spec).toEqual({ policyName: policy.metadata.name, validationActions: ['Deny'] });
    // Cluster-scoped: the release's namespace in the name keeps two releases of one name apart.
    expect(policy.metadata.name).toBe('wagate.shop-wagate-autoscaler.autoscaler-writes.wagate.io');
    expect(policy.spec.matchConditions[0].expression).toContain(`':${find(objects, 'ServiceAccount', '-autoscaler').metadata.name}'`);
    for (const mode of ['keda', 'hpa', 'off']) {
      expect([mode, guardKinds(renderScenario('keda', { set: [`worker.autoscaling.mode=${mode}`] }))]).toEqual([mode, []]);
    }
    expect(guardKinds(renderScenario('minimal', { set: ['autoscaler.writeGuard=false'] }))).toEqual([]);
  });
});
