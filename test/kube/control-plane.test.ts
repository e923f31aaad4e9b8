import { startControlPlane, type ControlPlane } from '../support/control-plane';
import { waitFor } from '../support/wait';

/** The harness itself: later suites (chart, autoscaler) rely on each of these behaviours. */
describe('the loopback Kubernetes control plane', () => {
  let plane: ControlPlane;

  beforeAll(async () => {
    plane = await startControlPlane();
  }, 180_000);

  afterAll(async () => {
    await plane?.stop();
  });

  it('runs the deployment controller, which makes a ReplicaSet with Pending pods', async () => {
    plane.kubectl(['create', 'deployment', 'probe', '--image=registry.invalid/probe:1', '--replicas=2']);
    const pods = await waitFor('two Pending pods of the probe Deployment', () => {
      const out = plane.kubectl(['get', 'pods', '-l', 'app=probe', '-o', 'jsonpath={.items[*].status.phase}']).trim();
      return out.split(' ').filter(Boolean).length === 2 ? out : undefined;
    }, 60_000);
    expect(pods).toBe('Pending Pending');
    expect(plane.kubectl(['get', 'replicasets', '-l', 'app=probe', '-o', 'name'])).toMatch(/replicaset\.apps\/probe-/);
  }, 90_000);

  it('authenticates ServiceAccount tokens and enforces RBAC on them', async () => {
    plane.kubectl(['create', 'serviceaccount', 'reader']);
    plane.kubectl(['create', 'role', 'lease-reader', '--verb=get,list', '--resource=leases']);
    plane.kubectl(['create', 'rolebinding', 'reader', '--role=lease-reader', '--serviceaccount=default:reader']);
    const token = plane.kubectl(['create', 'token', 'reader']).trim();
    const asReader = plane.kubeconfigForToken(token);
    expect(plane.kubectl(['auth', 'can-i', 'list', 'leases'], { kubeconfig: asReader }).trim()).toBe('yes');
    expect(() => plane.kubectl(['get', 'deployments'], { kubeconfig: asReader })).toThrow(/forbidden/);
  }, 60_000);
});
