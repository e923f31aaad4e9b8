import type { NextFunction, Request, Response } from 'express';
import { rateLimitKey } from './rate-limit-key';

export interface AdminRateLimit {
  /** Requests one client address may make per window, the token checks included. */
  requests: number;
  windowMs: number;
  /** Proxies whose X-Forwarded-For names the client (TRUSTED_PROXIES); none: the socket's address. */
  trustedProxies?: string[];
}

/** Addresses remembered at once; beyond it the oldest window is forgotten, so memory stays bounded. */
const MAX_TRACKED_ADDRESSES = 10_000;

/**
 * The admin endpoint's own limit, per client address, applied before the token is looked
 * at: it slows token guessing (a human-chosen token passes the start-up check, and a limit
 * after the token would let guesses run at full speed) and keeps the stats queries (a few
 * aggregate scans each) from loading Postgres. The client is req.ip: the socket's address, or,
 * from a trusted proxy (TRUSTED_PROXIES), the one its X-Forwarded-For names; for IPv6, its
 * /64. Behind an ingress without it, every client shares the ingress's address and its
 * allowance, and anyone can use up the admin's. Beyond the limit: 429 with Retry-After, in
 * whole seconds.
 */
export function createAdminRateLimit(limit: AdminRateLimit, now: () => number = Date.now) {
  const windows = new Map<string, { startedAt: number; count: number }>();
  return function adminRateLimit(req: Request, res: Response, next: NextFunction): void {
    const address = rateLimitKey(req.ip ?? req.socket.remoteAddress ?? 'unknown');
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
