import type { ConfirmChannel, Message, Options } from 'amqplib';

/**
 * Publishes a mandatory message and waits for its confirm; false when no queue took it. The
 * broker confirms a message it could not route as well, after returning it, so a caller that
 * acks a source on the confirm alone (a dead letter, a message being moved) would drop it.
 */
export async function publishRouted(
  channel: ConfirmChannel,
  exchange: string,
  routingKey: string,
  content: Buffer,
  options: Options.Publish & { messageId: string; mandatory: true },
): Promise<boolean> {
  let returned = false;
  const onReturn = (back: Message) => {
    if (back.properties.messageId === options.messageId) returned = true;
  };
  channel.on('return', onReturn);
  try {
    await new Promise<void>((resolve, reject) => channel.publish(exchange, routingKey, content, options, (error) => (error ? reject(error) : resolve())));
  } finally {
    channel.off('return', onReturn);
  }
  return !returned;
}
