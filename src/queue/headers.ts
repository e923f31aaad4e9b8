/** Headers the broker adds when it dead-letters or redelivers; a republished copy must not carry them. */
const BROKER_HEADERS = ['x-death', 'x-delivery-count', 'x-first-death-exchange', 'x-first-death-queue', 'x-first-death-reason'];

export function withoutBrokerHeaders(headers: Record<string, unknown> | undefined, alsoDrop: string[] = []): Record<string, string | number> {
  const copy: Record<string, unknown> = { ...(headers ?? {}) };
  for (const name of [...BROKER_HEADERS, ...alsoDrop]) delete copy[name];
  return copy as Record<string, string | number>;
}
