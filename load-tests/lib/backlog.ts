/** How the backlog scenario reads the gateway's unfinished work: its admin stats endpoint. */
export const STATS_PATH = '/api/v1/whatsapp-hardened/stats?hours=1';
/** How often the drain is polled, in seconds. */
export const DRAIN_POLL_SECONDS = 1;

export function statsHeaders(adminToken: string): Record<string, string> {
  return { Authorization: `Bearer ${adminToken}` };
}

/** Messages still queued or processing in the last hour, from the stats body; null when the body is not the stats shape. */
export function unfinishedMessages(body: unknown): number | null {
  const counts = (body as { counts?: Record<string, unknown> } | null)?.counts;
  if (!counts || typeof counts !== 'object') return null;
  const value = (status: string) => (typeof counts[status] === 'number' ? (counts[status] as number) : 0);
  return value('queued') + value('processing');
}
