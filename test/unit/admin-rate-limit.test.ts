import type { NextFunction, Request, Response } from 'express';
import { createAdminRateLimit } from '../../src/http/admin-rate-limit';
import { rateLimitKey } from '../../src/http/rate-limit-key';

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

  it('counts an IPv6 client by its /64, which it can pick any address of, so rotating addresses gains no allowance', () => {
    const { call } = harness(2, 60_000);
    expect([call('2001:db8:1:2::1').passed, call('2001:db8:1:2:ffff:ffff:ffff:ffff').passed]).toEqual([true, true]);
    expect(call('2001:0db8:0001:0002:0:0:0:7').passed).toBe(false);
    for (let i = 0; i < 10_001; i += 1) expect(call(`2001:db8:1:2:${(i % 65_536).toString(16)}::${i.toString(16)}`).passed).toBe(false);
    // Another /64, and IPv4 clients, keep their own allowance.
    expect(call('2001:db8:1:3::1').passed).toBe(true);
    expect([call('192.0.2.1').passed, call('::ffff:192.0.2.1').passed, call('::ffff:c000:201').passed]).toEqual([true, true, false]);
  });
});

describe('the key of a client address', () => {
  it.each([
    ['2001:db8::1', '2001:db8:0:0::/64'],
    ['2001:DB8:0:0:1::', '2001:db8:0:0::/64'],
    ['fe80::1%eth0', 'fe80:0:0:0::/64'],
    ['::1', '0:0:0:0::/64'],
    ['::', '0:0:0:0::/64'],
    ['1:2:3:4:5:6:7:8', '1:2:3:4::/64'],
    ['::ffff:192.0.2.1', '192.0.2.1'],
    ['::ffff:c000:280', '192.0.2.128'],
    ['64:ff9b::192.0.2.1', '64:ff9b:0:0::/64'],
    ['192.0.2.1', '192.0.2.1'],
    ['unknown', 'unknown'],
    // A port a trusted proxy wrote after the address (Azure's Application Gateway, IIS's ARR).
    ['203.0.113.5:52372', '203.0.113.5'],
    ['[2001:db8::1]:443', '2001:db8:0:0::/64'],
    ['[::ffff:192.0.2.1]:80', '192.0.2.1'],
    ['999.0.113.5:80', '999.0.113.5:80'],
  ])('keys %s as %s', (address, key) => {
    expect(rateLimitKey(address)).toBe(key);
  });
});
