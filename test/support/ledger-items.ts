import type { MessageItem } from '../../src/ledger/items';
import { uniqueWamid } from './webhooks';

/** A signed Meta text message as the adapter hands it to the ledger: new, in the window, queued. */
export function queuedTextItem(options: { sender?: string; text?: string; id?: string } = {}): MessageItem {
  const { sender = '15550800001', text = '2 pizzas', id = uniqueWamid() } = options;
  const timestampSeconds = Math.floor(Date.now() / 1000);
  return {
    kind: 'message',
    source: 'whatsapp',
    messageId: id,
    sender,
    senderKey: sender,
    business: '106540352242922',
    type: 'text',
    timestampSeconds,
    verdict: 'queued',
    payload: {
      v: 1,
      source: 'whatsapp',
      messageId: id,
      from: sender,
      senderKey: sender,
      business: '106540352242922',
      contactName: null,
      type: 'text',
      timestampSeconds,
      receivedAt: new Date().toISOString(),
      content: { id, type: 'text', text: { body: text } },
    },
  };
}
