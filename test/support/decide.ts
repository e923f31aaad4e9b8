import type { Sql } from '../../src/db/client';
import { loadConfig } from '../../src/config';
import { decide } from '../../src/orders/decide';
import type { Decision } from '../../src/orders/decision';
import type { QueueMessage } from '../../src/queue/message';

const config = loadConfig({});
/** The matching settings of a default configuration. */
export const DEFAULT_MATCH = { threshold: config.MATCH_THRESHOLD, ambiguityMargin: config.MATCH_AMBIGUITY_MARGIN };

/** A Meta text message as the worker gets it from its queue. */
export function textMessage(body: string): QueueMessage {
  return {
    v: 1, source: 'whatsapp', messageId: 'm', from: '15550001111', senderKey: '15550001111', business: 'b',
    contactName: null, type: 'text', timestampSeconds: null, receivedAt: new Date(0).toISOString(), content: { text: { body } },
  };
}

/** What the text orders, by sku, or the kind of decision it got instead. */
export async function cartOf(sql: Sql, body: string): Promise<Record<string, number> | Decision['kind']> {
  const decision = await decide(sql, textMessage(body), DEFAULT_MATCH);
  if (decision.kind !== 'order') return decision.kind;
  return Object.fromEntries(decision.lines.map((line) => [line.product.sku, line.quantity]));
}
