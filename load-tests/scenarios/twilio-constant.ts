import { genuineTwilio } from '../lib/messages.ts';
import { baseThresholds, constantLoad, type ScenarioModule } from '../lib/scenario.ts';

/** Twilio WhatsApp form posts at a constant arrival rate, signed over PUBLIC_BASE_URL and the sorted params. */
export const twilioConstant: ScenarioModule = {
  name: 'twilio-constant',
  defaults: { rate: 500, duration: '1m', signs: ['twilio'] },
  define: (settings) => ({
    name: 'twilio-constant',
    description: 'signed Twilio WhatsApp form posts, each new, at a constant arrival rate',
    load: constantLoad(settings),
    thresholds: baseThresholds(settings, { slo: true }),
    counters: [],
    plan: async (iteration, run) => [await genuineTwilio(iteration, run)],
  }),
};
