import { statsPathCovering } from '../lib/backlog.ts';
import { genuineMeta } from '../lib/messages.ts';
import { baseThresholds, constantLoad, type ScenarioModule } from '../lib/scenario.ts';
import { numberFrom } from '../lib/settings.ts';

/**
 * A backlog builds while no worker runs: the acks must not slow down as the queues grow
 * (ack latency does not depend on the worker backlog). After the load, the run waits (up to DRAIN_TIMEOUT seconds) until the gateway
 * reports no message queued or processing, which happens once a worker is started, and
 * reports how long the drain took. Needs ADMIN_TOKEN for the stats endpoint.
 */
export const backlog: ScenarioModule = {
  name: 'backlog',
  defaults: { rate: 500, duration: '2m', signs: ['meta'] },
  define: (settings) => {
    if (!settings.adminToken) throw new Error('ADMIN_TOKEN is required: the backlog scenario watches the drain through the stats endpoint');
    const timeoutSeconds = numberFrom(settings.env, 'DRAIN_TIMEOUT', 600);
    return {
      name: 'backlog',
      description: 'messages pile up in the queues with no worker running, then drain once one starts',
      load: constantLoad(settings),
      // A drain of nothing proves nothing: with a worker still running, what is read after the
      // load is only the last moments' messages on their way, so at least half of the load must
      // have piled up (half, so that a busy load generator's dropped iterations do not fail it).
      thresholds: {
        ...baseThresholds(settings, { slo: true }),
        backlog_messages: [`count>=${Math.ceil((settings.rate * settings.durationSeconds) / 2)}`],
        backlog_left: ['count==0'],
        backlog_dead: ['count==0'],
      },
      // Filled after the load: what had piled up, what was still unfinished when the wait ended,
      // and what went dead meanwhile (a drain by dead-lettering is no drain).
      counters: [{ name: 'backlog_messages' }, { name: 'backlog_left' }, { name: 'backlog_dead' }],
      plan: async (iteration, run) => [await genuineMeta('backlog', iteration, run)],
      drain: { timeoutSeconds, statsPath: statsPathCovering(settings.durationSeconds + timeoutSeconds) },
    };
  },
};
