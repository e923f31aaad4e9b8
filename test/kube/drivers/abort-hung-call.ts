/**
 * Runs the autoscaler's Kubernetes calls outside Jest against an API server that has gone
 * silent (KUBECONFIG points through a black-holed proxy), with a signal that aborts after
 * ABORT_MS, and prints how each call ended as one JSON line for test/kube/autoscaler.test.ts.
 *   tsx test/kube/drivers/abort-hung-call.ts NAMESPACE DEPLOYMENT
 */
import { createKubeClients } from '../../../src/autoscaler/kube-client';
import { createScalingLoop } from '../../../src/autoscaler/scaling-loop';
import { createWorkerDeployment } from '../../../src/autoscaler/worker-deployment';
import { createAutoscalerMetrics } from '../../../src/telemetry/autoscaler-metrics';
import { createLogger } from '../../../src/telemetry/logger';

const ABORT_MS = 1_000;

async function timed(work: () => Promise<unknown>): Promise<{ outcome: string; ms: number }> {
  const started = performance.now();
  const outcome = await work().then(
    (value) => `returned ${String(value)}`,
    (error: Error) => `threw ${error.name}`,
  );
  return { outcome, ms: Math.round(performance.now() - started) };
}

async function main(namespace: string, name: string): Promise<void> {
  const kube = createKubeClients();
  const worker = createWorkerDeployment({ apps: kube.apps, core: kube.core, namespace, name, component: 'wagate-autoscaler', identity: 'driver' });
  const read = await timed(() => worker.read(AbortSignal.timeout(ABORT_MS)));
  const loop = createScalingLoop({
    countBacklog: async () => 40,
    worker,
    policy: { targetPerReplica: 10, minReplicas: 1, maxReplicas: 8, shards: 8, scaleDownStabilizationMs: 0, tickGapMs: 20_000, tolerance: 0.1 },
    manualHoldMs: 60_000,
    metrics: createAutoscalerMetrics(),
    log: createLogger('silent', 'driver'),
  });
  const tick = await timed(() => loop.tick(AbortSignal.timeout(ABORT_MS)));
  process.stdout.write(`${JSON.stringify({ abortMs: ABORT_MS, read, tick })}\n`);
  // Whatever the silent server still holds open must not keep the driver alive.
  process.exit(0);
}

main(process.argv[2]!, process.argv[3]!).catch((error: Error) => {
  process.stderr.write(`${error.stack ?? error.message}\n`);
  process.exit(1);
});
