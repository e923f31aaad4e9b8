import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import type { ConfirmChannel, Message } from 'amqplib';
import { endPublishSpan, injectConfiguredPropagators, injectPublishSpan, inPublishSpan, startPublishSpan } from '../telemetry/publish-span';
import type { Broker } from './broker';
import { settleWithin } from '../settle-within';

/** The header that matches the return of a message without an id to its publish. */
const RETURN_TOKEN_HEADER = 'x-wagate-return-token';
const RETURN_TOKEN_PREFIX = 'unnamed:';

export interface Publication {
  /** AMQP message id, source:message_id, so consumers can recognise a redelivery. */
  messageId: string;
  routingKey: string;
  body: Buffer;
  traceparent: string;
  /** Extra headers, e.g. the attempt number of a retry. */
  headers?: Record<string, string | number>;
}

/**
 * How a batch keeps a sender's messages in order with the batches queued behind it. A batch
 * whose deadline leaves entries unwritten (a socket that stopped draining) hands them back; a
 * batch queued behind it must not write a sender's next message ahead of them.
 */
export interface BatchOrder {
  /** Asked once the batches ahead have written: false hands the whole batch back unwritten. */
  mayWrite(): boolean;
  /** Called as soon as the deadline leaves an entry unwritten, before any batch behind writes. */
  onUnwritten(): void;
}

export interface Publisher {
  /**
   * Publishes every entry and waits for the broker's confirms; true where confirmed and routed,
   * false where refused, returned or not written. Null where the broker had not answered by the
   * deadline: the message may still be routed and confirmed, and onLateAnswer then says how.
   */
  publishAll(exchange: string, entries: Publication[], onLateAnswer?: (index: number, ok: boolean) => void, order?: BatchOrder): Promise<(boolean | null)[]>;
}

/**
 * Persistent, mandatory publishes on a confirm channel. A message the broker returns as
 * unroutable is a failure even though it is later confirmed, so it stays in the outbox.
 */
export function createPublisher(broker: Broker, confirmTimeoutMs: number): Publisher {
  const returned = new WeakMap<ConfirmChannel, Set<string>>();
  /**
   * The batch still writing. A batch that waits for the socket to drain would otherwise let the
   * next one write in between, and a sender's later message could reach its queue first.
   */
  let writing: Promise<void> = Promise.resolve();

  function returnedSet(channel: ConfirmChannel): Set<string> {
    let set = returned.get(channel);
    if (!set) {
      const created = new Set<string>();
      channel.on('return', (message: Message) => {
        const key = message.properties.messageId || message.properties.headers?.[RETURN_TOKEN_HEADER];
        if (key) created.add(String(key));
      });
      returned.set(channel, created);
      set = created;
    }
    return set;
  }

  return {
    async publishAll(exchange, entries, onLateAnswer, order) {
      if (entries.length === 0) return [];
      // One deadline for the whole batch, writes and confirms alike, rather than a timer per
      // message: a broker that stops reading (a blocked connection) must not hold a batch for
      // the timeout once per message. What is not confirmed by then counts as failed.
      const deadline = Date.now() + confirmTimeoutMs;
      const before = writing;
      let written: () => void = () => undefined;
      writing = new Promise((resolve) => (written = resolve));
      const confirms: Promise<boolean>[] = [];
      let cut = false;
      try {
        // The batch before ends its writes by its own deadline, earlier than this one's.
        await before;
        const channel = broker.channel();
        if (!channel || (order && !order.mayWrite())) return entries.map(() => false);
        const unroutable = returnedSet(channel);
        for (const entry of entries) {
          // Past the deadline the rest is not written at all: it stays in the outbox for a sweep.
          if (Date.now() >= deadline) {
            if (!cut) order?.onUnwritten();
            cut = true;
            confirms.push(Promise.resolve(false));
            continue;
          }
          const { confirmed, bufferFull } = publishOne(channel, exchange, entry, unroutable);
          confirms.push(confirmed);
          // amqplib buffers without limit; wait for the socket to drain instead of growing memory.
          if (bufferFull) await drainedWithin(channel, deadline - Date.now());
        }
      } finally {
        written();
      }
      const results: (boolean | null)[] = confirms.map(() => null);
      let late = false;
      const collected = confirms.map((confirm, index) =>
        confirm.then((ok) => {
          if (!late) results[index] = ok;
          else onLateAnswer?.(index, ok);
        }),
      );
      await settleWithin(Promise.all(collected), deadline - Date.now(), undefined);
      late = true;
      return results.slice();
    },
  };
}

/** Waits for the channel to drain, for at most ms; its listener goes either way. */
async function drainedWithin(channel: ConfirmChannel, ms: number): Promise<void> {
  const abandon = new AbortController();
  await settleWithin(once(channel, 'drain', { signal: abandon.signal }).catch(() => undefined), ms, undefined);
  abandon.abort();
}

function publishOne(channel: ConfirmChannel, exchange: string, entry: Publication, unroutable: Set<string>) {
  let resolveConfirm: (ok: boolean) => void = () => undefined;
  const confirmed = new Promise<boolean>((resolve) => (resolveConfirm = resolve));
  let bufferFull = false;
  // Only a sampled message gets a publish span (the webhook's trace continues through it);
  // every other message costs no tracing work here: its traceparent header is enough.
  const span = startPublishSpan(entry.traceparent, { exchange, routingKey: entry.routingKey, messageId: entry.messageId });
  const headers: Record<string, unknown> = { ...entry.headers, traceparent: entry.traceparent };
  // A return is matched to its publish by the message id; one without (a message published into
  // a queue by hand, then handed on) carries a token of its own, or its return would go unseen
  // and the message count as routed.
  const returnKey = entry.messageId || `${RETURN_TOKEN_PREFIX}${randomUUID()}`;
  if (!entry.messageId) headers[RETURN_TOKEN_HEADER] = returnKey;
  if (span) injectPublishSpan(span, headers);
  else injectConfiguredPropagators(entry.traceparent, headers);
  const publish = () =>
    channel.publish(
      exchange,
      entry.routingKey,
      entry.body,
      {
        persistent: true,
        mandatory: true,
        messageId: entry.messageId,
        contentType: 'application/json',
        timestamp: Math.floor(Date.now() / 1000),
        headers,
      },
      (error) => {
        // basic.return arrives before the confirm, so the set is already filled here.
        const wasReturned = unroutable.delete(returnKey);
        const ok = !error && !wasReturned;
        if (span) endPublishSpan(span, ok);
        resolveConfirm(ok);
      },
    );
  try {
    bufferFull = !(span ? inPublishSpan(span, publish) : publish());
  } catch {
    if (span) endPublishSpan(span, false);
    resolveConfirm(false);
  }
  return { confirmed, bufferFull };
}
