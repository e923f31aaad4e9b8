import type { AppsV1Api, CoreV1Api } from '@kubernetes/client-node';
import { statusOf } from './api-status';
import { abortedBy, MERGE_PATCH } from './kube-client';
import {
  LAST_DECISION_ANNOTATION,
  REVISION_ANNOTATION,
  isPaused,
  parseLastDecision,
  parseMaxReplicas,
  type LastDecision,
  type WorkerSnapshot,
} from './ownership';

/**
 * The worker Deployment as the autoscaler reads, scales and annotates it; nothing else. Each
 * call gives up when `signal` aborts: a tick must not outlive the leadership it started under.
 */
export interface WorkerDeployment {
  /** The Deployment's replicas and annotations, with the resourceVersion to write against. */
  read(signal?: AbortSignal): Promise<WorkerSnapshot & { resourceVersion: string; uid?: string }>;
  /**
   * Sets the replicas and records the decision that set them, in one write: as two, a leader
   * that scaled and then failed to record (an API server hiccup, a change of leader) left a
   * count that the next leader took for a person's kubectl scale, and held for it.
   * 'conflict' when someone wrote the Deployment since it was read.
   */
  scale(decision: LastDecision, resourceVersion: string, signal?: AbortSignal): Promise<'scaled' | 'conflict'>;
  /**
   * Records a decision that changes no count (a baseline, a hold, a rollout's revision), with the
   * same optimistic check as scale: a write that the API server applies late, after a new
   * leader's scale, must not put the old count back in the annotation, or the next tick would
   * take that scale for a person's and hold for it.
   */
  recordDecision(decision: LastDecision, resourceVersion: string, signal?: AbortSignal): Promise<'recorded' | 'conflict'>;
  /**
   * Creates an Event about the Deployment. With `key`, the Event's name is the Deployment's and
   * the key's, so that it is created once however often it is tried: 'exists' when it was.
   */
  recordEvent(event: { reason: string; message: string; type: 'Normal' | 'Warning'; uid?: string; key?: string }, signal?: AbortSignal): Promise<'created' | 'exists'>;
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
    async read(signal) {
      const deployment = await apps.readNamespacedDeployment({ name, namespace }, abortedBy(signal));
      const annotations = deployment.metadata?.annotations ?? {};
      return {
        // The API server defaults an unset count to 1.
        replicas: deployment.spec?.replicas ?? 1,
        resourceVersion: deployment.metadata?.resourceVersion ?? '',
        revision: annotations[REVISION_ANNOTATION],
        paused: isPaused(annotations),
        lastDecision: parseLastDecision(annotations[LAST_DECISION_ANNOTATION]),
        maxReplicas: parseMaxReplicas(annotations),
        uid: deployment.metadata?.uid,
      };
    },
    async scale(decision, resourceVersion, signal) {
      try {
        // The resourceVersion makes this an optimistic update: the server refuses it with 409
        // when the Deployment changed after the read, instead of overwriting a person's kubectl scale.
        const metadata = { resourceVersion, annotations: { [LAST_DECISION_ANNOTATION]: JSON.stringify(decision) } };
        await apps.patchNamespacedDeployment(
          { name, namespace, body: { metadata, spec: { replicas: decision.replicas } }, fieldManager: options.component },
          abortedBy(signal, MERGE_PATCH),
        );
        return 'scaled';
      } catch (error) {
        if (statusOf(error) === 409) return 'conflict';
        throw error;
      }
    },
    async recordDecision(decision, resourceVersion, signal) {
      try {
        const metadata = { resourceVersion, annotations: { [LAST_DECISION_ANNOTATION]: JSON.stringify(decision) } };
        await apps.patchNamespacedDeployment({ name, namespace, body: { metadata }, fieldManager: options.component }, abortedBy(signal, MERGE_PATCH));
        return 'recorded';
      } catch (error) {
        if (statusOf(error) === 409) return 'conflict';
        throw error;
      }
    },
    async recordEvent(event, signal) {
      const now = new Date();
      const metadata = event.key === undefined ? { generateName: `${name}.`, namespace } : { name: `${name}.${event.key}`, namespace };
      try {
        await core.createNamespacedEvent({
          namespace,
          body: {
            metadata,
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
        }, abortedBy(signal));
        return 'created';
      } catch (error) {
        if (event.key !== undefined && statusOf(error) === 409) return 'exists';
        throw error;
      }
    },
  };
}
