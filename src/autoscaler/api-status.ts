/**
 * The HTTP status of a failed call. Errors come from client-node's ApiException; compared by
 * field, not instanceof, so a status-less network error reads as 0. So does an aborted or
 * timed-out call, whose DOMException carries a legacy numeric code of its own (20, 23) that is
 * no HTTP status. Kept apart from kube-client, so that code which only reads a status does not
 * load client-node.
 */
export function statusOf(error: unknown): number {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'number' && code >= 100 && code <= 599 ? code : 0;
}
