import { genuineMeta, genuineTwilio } from '../lib/messages.ts';
import { baseThresholds, type ArrivalLoad, type ScenarioModule } from '../lib/scenario.ts';
import { shareFrom } from '../lib/settings.ts';

/** Ramp up to RATE over the first quarter, hold it for half the time, ramp down over the last quarter. */
const RAMP_SHARE = 0.25;

/** Meta and Twilio together, META_SHARE of them Meta (default 0.5), at a ramping arrival rate. */
export const mixedRamping: ScenarioModule = {
  name: 'mixed-ramping',
  defaults: { rate: 500, duration: '2m', signs: ['meta', 'twilio'] },
  define: (settings) => {
    const metaShare = shareFrom(settings.env, 'META_SHARE', 0.5);
    const ramp = settings.durationSeconds * RAMP_SHARE;
    const load: ArrivalLoad = {
      executor: 'ramping-arrival-rate',
      startRate: 0,
      stages: [
        { target: settings.rate, durationSeconds: ramp },
        { target: settings.rate, durationSeconds: settings.durationSeconds - 2 * ramp },
        { target: 0, durationSeconds: ramp },
      ],
      preAllocatedVUs: settings.preAllocatedVUs,
      maxVUs: settings.maxVUs,
    };
    return {
      name: 'mixed-ramping',
      description: `Meta (${Math.round(metaShare * 100)} %) and Twilio orders, ramping up to the rate, holding it, ramping down`,
      load,
      thresholds: baseThresholds(settings, { slo: true, load }),
      counters: [],
      // Spread evenly: iteration n is Meta when it moves the running Meta count up by one.
      plan: async (iteration, run) => {
        const isMeta = Math.floor((iteration + 1) * metaShare) > Math.floor(iteration * metaShare);
        return [isMeta ? await genuineMeta('mixed-ramping', iteration, run) : await genuineTwilio(iteration, run)];
      },
    };
  },
};
