import { genuineMeta } from '../lib/messages.ts';
import { baseThresholds, constantLoad, type ScenarioModule } from '../lib/scenario.ts';

/** Meta text orders at a constant arrival rate, each a new message from senders in turn. */
export const metaConstant: ScenarioModule = {
  name: 'meta-constant',
  defaults: { rate: 500, duration: '1m', signs: ['meta'] },
  define: (settings) => ({
    name: 'meta-constant',
    description: 'signed Meta text orders, each new, at a constant arrival rate',
    load: constantLoad(settings),
    thresholds: baseThresholds(settings, { slo: true }),
    counters: [],
    plan: async (iteration, run) => [await genuineMeta('meta-constant', iteration, run)],
  }),
};
