import type { ConfirmChannel, Message, Options } from 'amqplib';
import { WagateError } from '../errors';

/** How long an operator command waits for one message's confirm before it gives up. */
export const ROUTED_CONFIRM_TIMEOUT_MS = 30_000;

/**
 * Publishes a mandatory message and waits for its confirm; false when no queue took it. The
 * broker confirms a message it could not route as well, after returning it, so a caller that
 * acks a source on the confirm alone (a dead letter, a message being moved) would drop it.
 * Throws once confirmTimeoutMs has passed without a confirm: a broker that blocks publishers
 * (a memory or disk alarm) or a stalled link would otherwise hold the command for good. The
 * caller then leaves its source unacked, so it goes back to its queue; the message may still
 * arrive, as a second copy, which the worker's claim makes a no-op.
 */
export async function publishRouted(
  channel: ConfirmChannel,
  exchange: string,
  routingKey: string,
  content: Buffer,
  options: Options.Publish & { messageId: string; mandatory: true },
  confirmTimeoutMs = ROUTED_CONFIRM_TIMEOUT_MS,
): Promise<boolean> {
  let returned = false;
  const onReturn = (back: Message) => {
    if (back.properties.messageId === options.messageId) returned = true;
  };
  channel.on('return', onReturn);
  let timer: NodeJS.Timeout | undefined;
  try {
    await new Promise<void>((resolve, reject) => {
      timer = setTimeout(() => reject(new WagateError('BROKER_UNAVAILABLE',
        `RabbitMQ did not confirm ${options.messageId} to ${exchange || '(default exchange)'} ${routingKey} within ${confirmTimeoutMs} ms; ` +
        'it may be blocking publishers (a memory or disk alarm: rabbitmqctl status) or unreachable. Nothing was lost: what was being moved stays where it was; run the command again once the broker is back')),
      confirmTimeoutMs);
      channel.publish(exchange, routingKey, content, options, (error) => (error ? reject(error) : resolve()));
    });
  } finally {
    clearTimeout(timer);
    channel.off('return', onReturn);
  }
  return !returned;
}
