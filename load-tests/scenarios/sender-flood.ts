import { metaMessageId, senderPhone } from '../lib/ids.ts';
import { genuineMeta } from '../lib/messages.ts';
import { ORDER_TEXT, signedMetaRequest } from '../lib/payloads.ts';
import { baseThresholds, constantLoad, nowSeconds, plannedIterations, type ScenarioModule } from '../lib/scenario.ts';
import { shareFrom } from '../lib/settings.ts';

/**
 * One sender sends FLOOD_SHARE of all messages (default half), far past the gateway's
 * per-sender limit: its excess is answered 200 and recorded rate_limited, never queued.
 * Meanwhile the other senders' answers (tagged slo:ack) must keep the SLO.
 */
export const senderFlood: ScenarioModule = {
  name: 'sender-flood',
  defaults: { rate: 500, duration: '1m', signs: ['meta'] },
  define: (settings) => {
    const floodShare = shareFrom(settings.env, 'FLOOD_SHARE', 0.5);
    // Without a flooder, or without anyone else, one of its two thresholds has no sample and passes unjudged.
    if (floodShare <= 0 || floodShare >= 1) {
      throw new Error('FLOOD_SHARE must be above 0 and below 1: the scenario judges both the flooding sender and the others (for a run without a flooder, use meta-constant)');
    }
    const isFlood = (iteration: number) => Math.floor((iteration + 1) * floodShare) > Math.floor(iteration * floodShare);
    // Nor with a load too small to hold both: RATE=1 over 1 s starts one iteration, the others' alone.
    const planned = plannedIterations(constantLoad(settings));
    const floods = Math.floor(planned * floodShare);
    // Below a share of 1, the others always get one; the flooder needs planned × share of at least 1.
    if (floods < 1) {
      throw new Error(`RATE × DURATION starts ${planned} iteration(s), too few for FLOOD_SHARE ${floodShare} to give the flooding sender one: raise RATE or DURATION`);
    }
    const thresholds = baseThresholds(settings, { slo: true });
    thresholds['http_req_duration{sender:flood}'] = [`p(99)<${settings.ackP99Ms}`];
    return {
      name: 'sender-flood',
      description: `one sender sends ${Math.round(floodShare * 100)} % of the messages while the others keep writing`,
      load: constantLoad(settings),
      thresholds,
      counters: [{ name: 'flood_messages', perIteration: (iteration) => (isFlood(iteration) ? 1 : 0) }],
      plan: async (iteration, run) => {
        if (!isFlood(iteration)) return [await genuineMeta('sender-flood', iteration, run, { sender: 'other' })];
        // The flooder's number lies outside the others' range (0 … senders-1).
        const message = {
          id: metaMessageId(run.runId, 'sender-flood', iteration),
          from: senderPhone(run.runId, run.settings.senders),
          text: ORDER_TEXT,
          timestampSeconds: nowSeconds(),
        };
        return [await signedMetaRequest(run.settings.metaSecret, message, { kind: 'meta', sender: 'flood' })];
      },
    };
  },
};

/** The flooding sender's number in a run, for checks afterwards. */
export function floodSender(runId: string, senders: number): string {
  return senderPhone(runId, senders);
}
