import type { NextFunction, Request, Response } from 'express';
import { createAdminRateLimit } from '../../src/http/admin-rate-limit';

/** The window's arithmetic, on a clock the test moves. */
function harness(requests: number, windowMs: number) {
  let clock = 1_000_000;
  const limit = createAdminRateLimit({ requests, windowMs }, () => clock);
  const call = (address: string) => {
    const answer: { status?: number; retryAfter?: string; passed: boolean } = { passed: false };
    const res = {
      status(code: number) { answer.status = code; return res; },
      set(name: string, value: string) { if (name === 'Retry-After') answer.retryAfter = value; return res; },
      json() { return res; },
    } as unknown as Response;
    limit({ socket: { remoteAddress: address } } as Request, res, (() => (answer.passed = true)) as NextFunction);
    return answer;
  };
  return { call, advance: (ms: number) => (clock += ms) };
}

describe('the admin rate limit', () => {
  it('opens a new window when the old one has passed, with Retry-After counting down to it', () => {
    const { call, advance } = harness(2, 60_000);
    expect([call('a').passed, call('a').passed]).toEqual([true, true]);
    expect(call('a')).toEqual({ passed: false, status: 429, retryAfter: '60' });
    advance(45_500);
    expect(call('a').retryAfter).toBe('15');
    advance(14_500);
    expect(call('a').passed).toBe(true);
  });

  it('forgets the oldest addresses beyond 10,000, so a scan of many addresses cannot grow memory', () => {
    const { call } = harness(1, 60_000);
    expect(call('first').passed).toBe(true);
    expect(call('first').passed).toBe(false);
    for (let i = 0; i < 10_000; i += 1) call(`scanner-${i}`);
    // "first" was evicted, so it starts a fresh window.
    expect(call('first').passed).toBe(true);
  });
});
