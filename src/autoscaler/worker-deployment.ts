import type { AppsV1Api, CoreV1Api } from '@kubernetes/client-node';
import { MERGE_PATCH, statusOf } from './kube-client';
import {
  LAST_DECISION_ANNOTATION,
  REVISION_ANNOTATION,
  isPaused,
  parseLastDecision,
  type LastDecision,
  type WorkerSnapshot,
} from './ownership';

/** The worker Deployment as the autoscaler reads, scales and annotates it; nothing else. */
export interface WorkerDeployment {
  /** The Deployment's annotations and its scale subresource, with the resourceVersion to write against. */
  read(): Promise<WorkerSnapshot & { resourceVersion: string; uid?: string }>;
  /** 'conflict' when someone wrote the Deployment since it was read. */
  scale(replicas: number, resourceVersion: string): Promise<'scaled' | 'conflict'>;
  recordDecision(decision: LastDecision): Promise<void>;
  recordEvent(event: { reason: string; message: string; type: 'Normal' | 'Warning'; uid?: string }): Promise<void>;
}

export interface WorkerDeploymentOptions {
  apps: AppsV1Api;
  core: CoreV1Api;
  namespace: string;
  name: string;
  /** Who the Events name as their source. */
  component: string;
  identity: string;
}

export function createWorkerDeployment(options: WorkerDeploymentOptions): WorkerDeployment {
  const { apps, core, namespace, name } = options;
  return {
    async read() {
      const [deployment, scale] = await Promise.all([
        apps.readNamespacedDeployment({ name, namespace }),
        apps.readNamespacedDeploymentScale({ name, namespace }),
      ]);
      const annotations = deployment.metadata?.annotations ?? {};
      return {
        replicas: scale.spec?.replicas ?? 0,
        resourceVersion: scale.metadata?.resourceVersion ?? '',
        revision: annotations[REVISION_ANNOTATION],
        paused: isPaused(annotations),
        lastDecision: parseLastDecision(annotations[LAST_DECISION_ANNOTATION]),
        uid: deployment.metadata?.uid,
      };
    },
    async scale(replicas, resourceVersion) {
      try {
        // The resourceVersion makes this an optimistic update: the server refuses it with 409
        // when the Deployment changed after the read, instead of overwriting a person's kubectl scale.
        await apps.patchNamespacedDeploymentScale(
          { name, namespace, body: { metadata: { resourceVersion }, spec: { replicas } }, fieldManager: options.component },
          MERGE_PATCH,
        );
        return 'scaled';
      } catch (error) {
        if (statusOf(error) === 409) return 'conflict';
        throw error;
      }
    },
    async recordDecision(decision) {
      await apps.patchNamespacedDeployment(
        { name, namespace, body: { metadata: { annotations: { [LAST_DECISION_ANNOTATION]: JSON.stringify(decision) } } }, fieldManager: options.component },
        MERGE_PATCH,
      );
    },
    async recordEvent(event) {
      const now = new Date();
      await core.createNamespacedEvent({
        namespace,
        body: {
          metadata: { generateName: `${name}.`, namespace },
          involvedObject: { apiVersion: 'apps/v1', kind: 'Deployment', name, namespace, uid: event.uid },
          reason: event.reason,
          message: event.message,
          type: event.type,
          source: { component: options.component },
          reportingComponent: `wagate.io/${options.component}`,
          reportingInstance: options.identity,
          firstTimestamp: now,
          lastTimestamp: now,
          count: 1,
        },
      });
    },
  };
}
