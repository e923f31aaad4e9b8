/**
 * Two leaders in turn, as after a change of leader on a slow API server: the old one has read
 * the Deployment and its decision-only write (adopting the count) reaches the server only after
 * the new leader has scaled. Prints one JSON line for test/kube/autoscaler.test.ts to judge.
 *   tsx test/kube/drivers/late-decision-write.ts NAMESPACE DEPLOYMENT
 */
import { createKubeClients } from '../../../src/autoscaler/kube-client';
import { createScalingLoop } from '../../../src/autoscaler/scaling-loop';
import { createWorkerDeployment, type WorkerDeployment } from '../../../src/autoscaler/worker-deployment';
import { createAutoscalerMetrics } from '../../../src/telemetry/autoscaler-metrics';
import { createLogger } from '../../../src/telemetry/logger';

async function main(namespace: string, name: string): Promise<void> {
  const kube = createKubeClients();
  const deployment = (identity: string) => createWorkerDeployment({ apps: kube.apps, core: kube.core, namespace, name, component: 'wagate-autoscaler', identity });
  const policy = { targetPerReplica: 10, minReplicas: 1, maxReplicas: 8, shards: 8, scaleDownStabilizationMs: 300_000, tickGapMs: 20_000, tolerance: 0.1 };
  const log = createLogger('silent', 'driver');
  const observer = deployment('observer');

  // The old leader: its read done, its decision-only write held on the way until released.
  let release!: () => void;
  const onTheWay = new Promise<void>((resolve) => (release = resolve));
  let read!: () => void;
  const hasRead = new Promise<void>((resolve) => (read = resolve));
  const old = deployment('old-leader');
  const oldWorker: WorkerDeployment = {
    ...old,
    async read(signal) {
      const snapshot = await old.read(signal);
      read();
      return snapshot;
    },
    async recordDecision(decision, resourceVersion, signal) {
      await onTheWay;
      return old.recordDecision(decision, resourceVersion, signal);
    },
  };
  const oldLeader = createScalingLoop({ countBacklog: async () => 5, worker: oldWorker, policy, manualHoldMs: 1_800_000, metrics: createAutoscalerMetrics(), log });
  const oldTick = oldLeader.tick();
  await hasRead;

  // The new leader sees the backlog grown and scales.
  const newLeader = createScalingLoop({ countBacklog: async () => 40, worker: deployment('new-leader'), policy, manualHoldMs: 1_800_000, metrics: createAutoscalerMetrics(), log });
  const first = await newLeader.tick();
  const afterNew = await observer.read();
  release();
  const oldReason = await oldTick;
  const afterOld = await observer.read();
  const next = await newLeader.tick();
  process.stdout.write(`${JSON.stringify({
    newLeader: first,
    afterNewLeader: { replicas: afterNew.replicas, last: afterNew.lastDecision },
    oldLeader: oldReason,
    afterOldLeader: { replicas: afterOld.replicas, last: afterOld.lastDecision },
    newLeaderNext: next,
  })}\n`);
}

main(process.argv[2]!, process.argv[3]!).catch((error: Error) => {
  process.stderr.write(`${error.stack ?? error.message}\n`);
  process.exit(1);
});
