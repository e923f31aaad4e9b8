import { settleWithin } from '../settle-within';

/** How a request answered after its publish (ACK_AFTER=publish) got its 200. */
export type PublishWait = 'confirmed' | 'unconfirmed' | 'timed_out';

/**
 * Waits for the broker's confirm of a batch's messages, at most `timeoutMs`. The answer is a
 * 200 whatever happens: the messages are committed with their outbox rows, which the relay
 * publishes later if the broker is away or slow. Only the moment of the 200 changes.
 */
export async function waitForPublish(publishing: Promise<boolean>, timeoutMs: number): Promise<PublishWait> {
  const settled = publishing.then(
    (confirmed): PublishWait => (confirmed ? 'confirmed' : 'unconfirmed'),
    (): PublishWait => 'unconfirmed',
  );
  return settleWithin(settled, timeoutMs, 'timed_out' as const);
}
