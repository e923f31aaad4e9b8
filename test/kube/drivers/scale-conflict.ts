/**
 * Runs the autoscaler's Kubernetes writes outside Jest (whose module system cannot load the
 * ESM-only @kubernetes/client-node) against the API server named by KUBECONFIG, and prints
 * what happened as one JSON line for test/kube/autoscaler.test.ts to judge.
 *   tsx test/kube/drivers/scale-conflict.ts NAMESPACE DEPLOYMENT
 */
import { createKubeClients } from '../../../src/autoscaler/kube-client';
import { createScalingLoop } from '../../../src/autoscaler/scaling-loop';
import { createWorkerDeployment, type WorkerDeployment } from '../../../src/autoscaler/worker-deployment';
import { createAutoscalerMetrics } from '../../../src/telemetry/autoscaler-metrics';
import { createLogger } from '../../../src/telemetry/logger';

async function main(namespace: string, name: string): Promise<void> {
  const kube = createKubeClients();
  const worker = createWorkerDeployment({ apps: kube.apps, core: kube.core, namespace, name, component: 'wagate-autoscaler', identity: 'driver' });
  const someoneElse = createWorkerDeployment({ apps: kube.apps, core: kube.core, namespace, name, component: 'someone-else', identity: 'other' });
  const before = await worker.read();
  // Another writer changes the Deployment between our read and our write.
  const baseline = await someoneElse.recordDecision({ replicas: before.replicas, reason: 'baseline', atMs: Date.now(), revision: before.revision }, before.resourceVersion);
  const staleWrite = await worker.scale({ replicas: before.replicas + 1, reason: 'stale', atMs: Date.now(), revision: before.revision }, before.resourceVersion);
  // A decision-only write against the same stale read is refused too.
  const staleRecord = await worker.recordDecision({ replicas: before.replicas, reason: 'stale', atMs: Date.now(), revision: before.revision }, before.resourceVersion);
  const afterStale = await worker.read();
  // The loop itself: its first read is overtaken by another write, so its patch conflicts.
  const metrics = createAutoscalerMetrics();
  let reads = 0;
  const racing: WorkerDeployment = {
    ...worker,
    async read() {
      const snapshot = await worker.read();
      reads += 1;
      if (reads === 1) await someoneElse.recordDecision({ ...snapshot.lastDecision!, atMs: Date.now() }, snapshot.resourceVersion);
      return snapshot;
    },
  };
  const loop = createScalingLoop({
    countBacklog: async () => 40,
    worker: racing,
    policy: { targetPerReplica: 10, minReplicas: 1, maxReplicas: 8, shards: 8, scaleDownStabilizationMs: 0, tickGapMs: 20_000, tolerance: 0.1 },
    manualHoldMs: 60_000,
    metrics,
    log: createLogger('silent', 'driver'),
  });
  const reason = await loop.tick();
  const conflicts = (await metrics.decisions.get()).values.find((value) => value.labels.reason === 'conflict')?.value;
  const final = await worker.read();
  process.stdout.write(
    `${JSON.stringify({ before: before.replicas, baseline, staleWrite, staleRecord, afterStale: { replicas: afterStale.replicas, reason: afterStale.lastDecision?.reason }, reason, reads, conflicts, final: final.replicas, lastDecision: final.lastDecision })}\n`,
  );
}

main(process.argv[2]!, process.argv[3]!).catch((error: Error) => {
  process.stderr.write(`${error.stack ?? error.message}\n`);
  process.exit(1);
});
