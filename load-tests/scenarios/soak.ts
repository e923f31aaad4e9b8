import { genuineMeta, genuineTwilio } from '../lib/messages.ts';
import { baseThresholds, constantLoad, type ScenarioModule } from '../lib/scenario.ts';

/** A steady mix of Meta and Twilio orders for a long time (30 min unless DURATION says otherwise): leaks and slow drift show here. */
export const soak: ScenarioModule = {
  name: 'soak',
  defaults: { rate: 100, duration: '30m', signs: ['meta', 'twilio'] },
  define: (settings) => ({
    name: 'soak',
    description: 'Meta and Twilio orders in turn at a steady rate for a long time',
    load: constantLoad(settings),
    thresholds: baseThresholds(settings, { slo: true }),
    counters: [],
    plan: async (iteration, run) => [iteration % 2 === 0 ? await genuineMeta('soak', iteration, run) : await genuineTwilio(iteration, run)],
  }),
};
