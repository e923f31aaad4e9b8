import { metaMessageId, senderPhone } from '../lib/ids.ts';
import { ORDER_TEXT, signedMetaRequest } from '../lib/payloads.ts';
import { baseThresholds, constantLoad, nowSeconds, type ScenarioModule } from '../lib/scenario.ts';
import { integerFrom } from '../lib/settings.ts';

/**
 * The same message ids from many VUs at once, as a provider retrying through several
 * connections sends them: ITERATIONS_PER_ID consecutive iterations (on different VUs, a few
 * milliseconds apart) each send COPIES copies of one id in parallel. The gateway must keep
 * exactly one row per id and count every other copy as a duplicate; the counters say how
 * many ids and duplicate copies were sent, to compare with duplicate_count.
 */
export const duplicateStorm: ScenarioModule = {
  name: 'duplicate-storm',
  defaults: { rate: 100, duration: '1m', signs: ['meta'] },
  define: (settings) => {
    const copies = integerFrom(settings.env, 'COPIES', 5);
    const iterationsPerId = integerFrom(settings.env, 'ITERATIONS_PER_ID', 4);
    const stormOf = (iteration: number) => Math.floor(iteration / iterationsPerId);
    const opensStorm = (iteration: number) => iteration % iterationsPerId === 0;
    return {
      name: 'duplicate-storm',
      description: `${iterationsPerId} iterations × ${copies} parallel copies of each message id`,
      requestsPerIteration: copies,
      load: constantLoad(settings),
      thresholds: baseThresholds(settings, { slo: true }),
      counters: [
        { name: 'storm_ids', perIteration: (iteration) => (opensStorm(iteration) ? 1 : 0) },
        { name: 'duplicate_copies', perIteration: (iteration) => copies - (opensStorm(iteration) ? 1 : 0) },
      ],
      plan: async (iteration, run) => {
        const storm = stormOf(iteration);
        const message = {
          id: metaMessageId(run.runId, 'duplicate-storm', storm),
          from: senderPhone(run.runId, storm % run.settings.senders),
          text: ORDER_TEXT,
          timestampSeconds: nowSeconds(),
        };
        const request = await signedMetaRequest(run.settings.metaSecret, message, { kind: 'duplicate', slo: 'ack' });
        return Array.from({ length: copies }, () => request);
      },
    };
  },
};
