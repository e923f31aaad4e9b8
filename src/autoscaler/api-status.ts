/**
 * The HTTP status of a failed call. Errors come from client-node's ApiException; compared by
 * field, not instanceof, so a status-less network error reads as 0. Kept apart from
 * kube-client, so that code which only reads a status does not load client-node.
 */
export function statusOf(error: unknown): number {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'number' ? code : 0;
}
