import { createStallWatch, stallLimitMs } from '../../src/db/stall-watch';
import { waitFor } from '../support/wait';

describe('the stall watch', () => {
  it('takes DB_STALL_LIMIT_MS (150 s by default), and never less than four connect and statement timeouts', () => {
    expect(stallLimitMs(3, 5000, 150_000)).toBe(150_000);
    expect(stallLimitMs(3, 5000, 1000)).toBe(32_000);
    expect(stallLimitMs(10, 60_000, 150_000)).toBe(280_000);
  });

  it('names the operation waiting longest once it is past the limit, and forgets it once answered', async () => {
    const watch = createStallWatch(200);
    let answer!: () => void;
    const hung = watch.time('claim', () => new Promise<void>((resolve) => (answer = resolve)));
    const later = watch.time('heartbeat', () => new Promise<void>(() => undefined));
    expect(watch.stalled()).toBeNull();
    await waitFor('the claim to be past the limit', () => watch.stalled() !== null, 5000);
    expect(watch.stalled()).toEqual({ operation: 'claim', waitingMs: expect.any(Number) });
    expect(watch.stalled()!.waitingMs).toBeGreaterThan(200);
    answer();
    await hung;
    expect(watch.stalled()?.operation).toBe('heartbeat');
    void later;
  });

  it('forgets an operation that failed, and passes its error on', async () => {
    const watch = createStallWatch(0);
    await expect(watch.time('settle', () => Promise.reject(new Error('connection ended')))).rejects.toThrow('connection ended');
    expect(watch.stalled()).toBeNull();
  });
});
