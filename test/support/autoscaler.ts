import { readFileSync } from 'node:fs';
import path from 'node:path';
import { stringify } from 'yaml';
import { renderScenario } from '../chart/helm';
import type { ControlPlane } from './control-plane';
import { spawnWagate, type ChildIngest } from './process';

export const NAMESPACE = 'wagate';
export const WORKER = 'wagate-worker';
export const LEASE = 'wagate-worker-autoscaler';
export const RBAC_FIXTURE = path.join(__dirname, '..', 'fixtures', 'kube', 'autoscaler-rbac.yaml');

/** Short periods so a suite sees takeovers, windows and holds within seconds. */
export const FAST_AUTOSCALER_ENV: Record<string, string> = {
  NODE_ENV: 'test',
  METRICS_PORT: '0',
  HOST: '127.0.0.1',
  WORK_SHARDS: '8',
  AUTOSCALER_TARGET_PER_REPLICA: '10',
  AUTOSCALER_INTERVAL_SECONDS: '1',
  AUTOSCALER_SCALE_DOWN_STABILIZATION_SECONDS: '3',
  AUTOSCALER_MANUAL_HOLD_SECONDS: '1800',
  AUTOSCALER_LEASE_DURATION_SECONDS: '3',
  AUTOSCALER_RENEW_DEADLINE_SECONDS: '2',
  AUTOSCALER_RETRY_PERIOD_SECONDS: '1',
};

/**
 * The namespace, the autoscaler's ServiceAccount with the least-privilege Role of the fixture,
 * and a kubeconfig that carries only that ServiceAccount's token (a client certificate would win).
 */
export function prepareAutoscalerAccess(plane: ControlPlane): string {
  plane.kubectl(['create', 'namespace', NAMESPACE]);
  plane.kubectl(['apply', '-n', NAMESPACE, '-f', '-'], { input: readFileSync(RBAC_FIXTURE, 'utf8') });
  // The chart's write guard for this account (release wagate: the chart's names are the fixture's),
  // so every write the autoscaler makes in the suite goes through it.
  const guard = renderScenario('minimal', { releaseName: 'wagate', namespace: NAMESPACE }).filter((o) => o.kind.startsWith('ValidatingAdmissionPolicy'));
  if (guard.length !== 2) throw new Error(`the chart rendered ${guard.length} write-guard objects for the autoscaler, not 2`);
  plane.kubectl(['apply', '-f', '-'], { input: guard.map((o) => `---\n${stringify(o)}`).join('\n') });
  const token = plane.kubectl(['create', 'token', 'wagate-autoscaler', '-n', NAMESPACE, '--duration=2h']).trim();
  return plane.kubeconfigForToken(token, NAMESPACE);
}

/** A fresh worker Deployment with the given replicas: no annotations, no history. */
export function recreateWorker(plane: ControlPlane, replicas = 1): void {
  plane.kubectl(['delete', 'deployment', WORKER, '-n', NAMESPACE, '--ignore-not-found', '--wait=true']);
  plane.kubectl(['delete', 'events', '--all', '-n', NAMESPACE]);
  plane.kubectl(['create', 'deployment', WORKER, '-n', NAMESPACE, '--image=registry.invalid/wagate:test', `--replicas=${replicas}`]);
}

export function workerState(plane: ControlPlane): { replicas: number; annotations: Record<string, string> } {
  const deployment = JSON.parse(plane.kubectl(['get', 'deployment', WORKER, '-n', NAMESPACE, '-o', 'json'])) as {
    spec: { replicas: number };
    metadata: { annotations?: Record<string, string> };
  };
  return { replicas: deployment.spec.replicas, annotations: deployment.metadata.annotations ?? {} };
}

export function lastDecision(plane: ControlPlane): { replicas: number; reason: string; revision?: string; holdUntilMs?: number; announced?: boolean } | undefined {
  const value = workerState(plane).annotations['wagate.io/autoscaler-last-decision'];
  return value ? (JSON.parse(value) as { replicas: number; reason: string; revision?: string; holdUntilMs?: number }) : undefined;
}

export interface LeaseState {
  holder?: string;
  renewTime?: string;
  transitions: number;
  durationSeconds?: number;
}

export function leaseState(plane: ControlPlane): LeaseState | undefined {
  try {
    const lease = JSON.parse(plane.kubectl(['get', 'lease', LEASE, '-n', NAMESPACE, '-o', 'json'])) as {
      spec: { holderIdentity?: string; renewTime?: string; leaseTransitions?: number; leaseDurationSeconds?: number };
    };
    return {
      holder: lease.spec.holderIdentity,
      renewTime: lease.spec.renewTime,
      transitions: lease.spec.leaseTransitions ?? 0,
      durationSeconds: lease.spec.leaseDurationSeconds,
    };
  } catch {
    return undefined;
  }
}

/** The worker Deployment's Events with one reason, oldest first. */
export function workerEvents(plane: ControlPlane, reason: string): string[] {
  const list = JSON.parse(
    plane.kubectl(['get', 'events', '-n', NAMESPACE, '--field-selector', `involvedObject.name=${WORKER},reason=${reason}`, '-o', 'json']),
  ) as { items: { message: string; metadata: { creationTimestamp: string; name: string } }[] };
  return list.items
    .sort((a, b) => a.metadata.creationTimestamp.localeCompare(b.metadata.creationTimestamp) || a.metadata.name.localeCompare(b.metadata.name))
    .map((event) => event.message);
}

export function startAutoscaler(kubeconfig: string, env: Record<string, string>): Promise<ChildIngest> {
  return spawnWagate('autoscaler', { ...FAST_AUTOSCALER_ENV, KUBECONFIG: kubeconfig, ...env }, 60_000);
}

/** One sample of a metric from a process's /metrics, or undefined when the series is absent. */
export async function metricValue(metricsUrl: string, name: string, labels = ''): Promise<number | undefined> {
  const text = await (await fetch(metricsUrl)).text();
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    if (labels && !line.includes(labels)) continue;
    return Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return undefined;
}
