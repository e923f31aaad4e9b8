import { randomBytes } from 'node:crypto';
import { estimatedTokenBits, loadConfig, MIN_ADMIN_TOKEN_BITS } from '../../src/config';
import { bearerToken } from '../../src/http/admin-stats';
import { secureEquals } from '../../src/http/secure-compare';

describe('ADMIN_TOKEN strength, checked at start', () => {
  it.each(['aaaaaaaaaaaaaaaa', 'changemechangeme', 'passwordpassword', 'adminadminadmin1', '0123456789abcdef', 'abcdefghijklmnopq', 'zyxwvutsrqponmlk'])(
    'refuses %s, naming the variable and not echoing the token',
    (token) => {
      expect(() => loadConfig({ ADMIN_TOKEN: token })).toThrow(/ADMIN_TOKEN: is too guessable/);
      expect(() => loadConfig({ ADMIN_TOKEN: token })).not.toThrow(token);
    },
  );

  it('accepts generated tokens of every usual form', () => {
    for (let i = 0; i < 200; i += 1) {
      for (const token of [randomBytes(16).toString('hex'), randomBytes(24).toString('base64'), randomBytes(32).toString('base64url')]) {
        expect(loadConfig({ ADMIN_TOKEN: token }).ADMIN_TOKEN).toBe(token);
      }
    }
    expect(estimatedTokenBits(randomBytes(32).toString('base64'))).toBeGreaterThan(MIN_ADMIN_TOKEN_BITS);
  });
});

describe('the admin token compare', () => {
  it('is equality, whatever the lengths', () => {
    const token = randomBytes(24).toString('base64');
    expect(secureEquals(token, token)).toBe(true);
    expect(secureEquals(token.slice(0, -1), token)).toBe(false);
    expect(secureEquals(token + 'x', token)).toBe(false);
    expect(secureEquals('', token)).toBe(false);
  });

  it('hashes both sides, so the compared buffers have one length and no early exit is possible', () => {
    // timingSafeEqual throws on buffers of different lengths: a compare of raw strings
    // would throw here (and leak the length) instead of answering false.
    expect(() => secureEquals('a', 'a much longer expected token')).not.toThrow();
    expect(secureEquals('a', 'a much longer expected token')).toBe(false);
  });
});

describe('the Authorization header', () => {
  it('takes the bearer scheme in any case and after any number of spaces (RFC 7235 §2.1)', () => {
    for (const header of ['Bearer abc123', 'bearer abc123', 'BEARER abc123', 'bEaReR abc123', 'Bearer   abc123']) {
      expect(bearerToken(header)).toBe('abc123');
    }
  });

  it('finds no token under another scheme, without a space, or without a token', () => {
    for (const header of ['', 'Basic abc123', 'Bearerabc123', 'Bearer', 'Bearer ', 'Bearer    ', 'Token Bearer abc123']) {
      expect(bearerToken(header)).toBe('');
    }
  });
});
