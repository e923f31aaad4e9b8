import type { NextFunction, Request, Response } from 'express';

export interface AdminRateLimit {
  /** Requests with the admin token one client address may make per window. */
  requests: number;
  windowMs: number;
}

/** Addresses remembered at once; beyond it the oldest window is forgotten, so memory stays bounded. */
const MAX_TRACKED_ADDRESSES = 10_000;

/**
 * The admin endpoint's own limit, per client address, on requests that passed the token
 * check: it keeps the stats queries (a few aggregate scans each) from loading Postgres.
 * Wrong tokens do not count. Counted before the token, they let anyone keep the admin out:
 * behind a load balancer every client can arrive from one address, and 30 requests a minute
 * from anywhere used the admin's whole allowance. Guessing gains nothing from that: the token
 * is refused at start below 48 bits (config), which no online guessing gets through, and a
 * wrong one costs one constant-time comparison and no query. The socket's address is used,
 * never X-Forwarded-For, which a client writes itself. Beyond the limit: 429 with
 * Retry-After, in whole seconds.
 */
export function createAdminRateLimit(limit: AdminRateLimit, now: () => number = Date.now) {
  const windows = new Map<string, { startedAt: number; count: number }>();
  return function adminRateLimit(req: Request, res: Response, next: NextFunction): void {
    const address = req.socket.remoteAddress ?? 'unknown';
    const at = now();
    let window = windows.get(address);
    if (!window || at - window.startedAt >= limit.windowMs) {
      windows.delete(address);
      if (windows.size >= MAX_TRACKED_ADDRESSES) windows.delete(windows.keys().next().value!);
      window = { startedAt: at, count: 0 };
      windows.set(address, window);
    }
    window.count += 1;
    if (window.count > limit.requests) {
      const retryAfterSeconds = Math.max(1, Math.ceil((window.startedAt + limit.windowMs - at) / 1000));
      res.status(429).set('Retry-After', String(retryAfterSeconds)).json({ error: `too many admin requests; retry in ${retryAfterSeconds} s` });
      return;
    }
    next();
  };
}
