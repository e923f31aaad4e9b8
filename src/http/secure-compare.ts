import { createHash, timingSafeEqual } from 'node:crypto';

/** Constant-time string equality: both sides are hashed first so lengths never leak. */
export function secureEquals(given: string, expected: string): boolean {
  const a = createHash('sha256').update(given).digest();
  const b = createHash('sha256').update(expected).digest();
  return timingSafeEqual(a, b);
}
