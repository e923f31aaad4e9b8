/**
 * A leader whose Lease is deleted (kubectl, a GitOps prune) and created again by a standby
 * between the leader's read and its own create. Runs the leader election outside Jest (whose
 * module system cannot load the ESM-only @kubernetes/client-node) against the API server named
 * by KUBECONFIG, and prints what happened, in order, as one JSON line for
 * test/kube/autoscaler.test.ts to judge.
 *   tsx test/kube/drivers/lease-recreated.ts NAMESPACE LEASE
 */
import { V1MicroTime, type CoordinationV1Api } from '@kubernetes/client-node';
import { startLeaderElection } from '../../../src/autoscaler/leader-election';
import { createKubeClients } from '../../../src/autoscaler/kube-client';
import { createLogger } from '../../../src/telemetry/logger';

async function main(namespace: string, name: string): Promise<void> {
  const kube = createKubeClients();
  const events: string[] = [];
  let armed = false;
  let leading!: () => void;
  const led = new Promise<void>((resolve) => (leading = resolve));
  let stopped!: () => void;
  const stoppedLeading = new Promise<void>((resolve) => (stopped = resolve));

  // The real API server's answers, with the standby's create slipped in after the leader's
  // read found no Lease: the leader's own create then meets it.
  const coordination = Object.create(kube.coordination) as CoordinationV1Api;
  coordination.readNamespacedLease = async (...args) => {
    try {
      const lease = await kube.coordination.readNamespacedLease(...args);
      if (armed) events.push(`read held by ${lease.spec?.holderIdentity}`);
      return lease;
    } catch (error) {
      if (!armed || events.includes('standby created the Lease')) throw error;
      events.push('read found no Lease');
      const now = new V1MicroTime();
      await kube.coordination.createNamespacedLease({
        namespace,
        body: { metadata: { name }, spec: { holderIdentity: 'standby', leaseDurationSeconds: 15, acquireTime: now, renewTime: now, leaseTransitions: 1 } },
      });
      events.push('standby created the Lease');
      throw error;
    }
  };
  coordination.createNamespacedLease = async (...args) => {
    try {
      return await kube.coordination.createNamespacedLease(...args);
    } catch (error) {
      if (armed) events.push('create refused');
      throw error;
    }
  };

  const elector = startLeaderElection({
    coordination, namespace, leaseName: name, identity: 'leader',
    leaseDurationMs: 15_000, renewDeadlineMs: 10_000, retryPeriodMs: 300,
    log: createLogger('silent', 'driver'),
    onLeadingChange(value) {
      if (armed) events.push(value ? 'leading' : 'stopped leading');
      if (value) leading();
      else stopped();
    },
    // Called as each try begins: marks where one try ends and the next starts.
    fitToLead: async () => {
      if (armed) events.push('try');
      return true;
    },
  });
  await led;
  armed = true;
  await kube.coordination.deleteNamespacedLease({ name, namespace });
  await stoppedLeading;
  armed = false;
  await elector.release();
  await kube.coordination.deleteNamespacedLease({ name, namespace });
  process.stdout.write(`${JSON.stringify({ events })}\n`);
}

main(process.argv[2]!, process.argv[3]!).catch((error: Error) => {
  process.stderr.write(`${error.stack ?? error.message}\n`);
  process.exit(1);
});
