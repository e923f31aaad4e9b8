import { randomBytes } from 'node:crypto';
import { createBroker } from '../../src/queue/broker';
import { createLogger } from '../../src/telemetry/logger';
import { TEST_AMQP_URL } from '../support/amqp';
import { startProxyFor } from '../support/tcp-proxy';

describe('broker close', () => {
  it('returns while a hung broker answers neither the channel close nor the connection close', async () => {
    const { proxy, url } = await startProxyFor(TEST_AMQP_URL, 5672);
    try {
      const broker = createBroker({
        url,
        name: `wagate-test close ${randomBytes(4).toString('hex')}`,
        log: createLogger('silent', 'wagate-test'),
        setup: async () => undefined,
      });
      await broker.waitUntilConnected(10_000);
      // The connection stays open, and nothing comes back: no Close-Ok, no heartbeat.
      proxy.setMode('blackhole');
      // Bounded by the close wait (5 s) for each of the two closes; the broker's heartbeat
      // would give up on the connection only after about 30 s, past this test's timeout.
      await expect(broker.close()).resolves.toBeUndefined();
      expect(broker.channel()).toBeNull();
    } finally {
      await proxy.close();
    }
  }, 20_000);
});
