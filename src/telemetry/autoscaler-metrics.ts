import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';

export type AutoscalerMetrics = ReturnType<typeof createAutoscalerMetrics>;

/** Every reason a tick can end with; each starts at 0 so rate() sees the first one. */
export const AUTOSCALER_REASONS = [
  'scale_up',
  'scale_down',
  'steady',
  'within_tolerance',
  'stabilising',
  'out_of_bounds',
  'paused',
  'manual_scale',
  'manual_hold',
  'conflict',
  'error',
] as const;
export type AutoscalerReason = (typeof AUTOSCALER_REASONS)[number];

/**
 * The autoscaler's own registry: it serves no webhooks and consumes no queue, so it exports
 * none of the other roles' series, only these and the default process metrics.
 */
export function createAutoscalerMetrics() {
  const registry = new Registry();
  registry.setDefaultLabels({ role: 'autoscaler' });
  collectDefaultMetrics({ register: registry, prefix: 'wagate_' });
  const metrics = {
    registry,
    leader: new Gauge({
      name: 'wagate_autoscaler_leader',
      help: '1 while this autoscaler process holds the Lease and acts; standbys report 0. sum() is 1 in a healthy install.',
      registers: [registry],
    }),
    backlog: new Gauge({
      name: 'wagate_autoscaler_backlog_messages',
      help: 'Messages ready for a worker, counted in PostgreSQL by the leader: in a queue or the outbox, or held by a worker; not those parked in a retry tier.',
      registers: [registry],
    }),
    desired: new Gauge({
      name: 'wagate_autoscaler_desired_replicas',
      help: 'Worker replicas the last decision asked for, after the clamp and the step limits.',
      registers: [registry],
    }),
    current: new Gauge({
      name: 'wagate_autoscaler_current_replicas',
      help: 'spec.replicas of the worker Deployment, as the leader last read it.',
      registers: [registry],
    }),
    decisions: new Counter({
      name: 'wagate_autoscaler_decisions_total',
      help: 'Autoscaler ticks by how they ended (scale_up, scale_down, steady, within_tolerance, stabilising, out_of_bounds, paused, manual_scale, manual_hold, conflict, error).',
      labelNames: ['reason'] as const,
      registers: [registry],
    }),
    manualHolds: new Counter({
      name: 'wagate_autoscaler_manual_holds_total',
      help: 'Manual scales of the worker Deployment detected; each starts a hold of AUTOSCALER_MANUAL_HOLD_SECONDS.',
      registers: [registry],
    }),
    holdingUntil: new Gauge({
      name: 'wagate_autoscaler_hold_until_timestamp_seconds',
      help: 'While yielding to a manual scale: when the hold ends (Unix time); 0 otherwise.',
      registers: [registry],
    }),
    paused: new Gauge({
      name: 'wagate_autoscaler_paused',
      help: '1 while the worker Deployment carries wagate.io/autoscaler-paused: "true", or names another scaler in wagate.io/autoscaling-mode.',
      registers: [registry],
    }),
  };
  for (const reason of AUTOSCALER_REASONS) metrics.decisions.inc({ reason }, 0);
  metrics.leader.set(0);
  metrics.holdingUntil.set(0);
  metrics.paused.set(0);
  return metrics;
}
