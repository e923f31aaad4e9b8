import { randomBytes } from 'node:crypto';
import type { ConfirmChannel } from 'amqplib';
import { createBroker, type Broker } from '../../src/queue/broker';
import { createLogger } from '../../src/telemetry/logger';
import { TEST_AMQP_URL } from '../support/amqp';
import { closeConnection } from '../support/rabbitmqctl';
import { waitFor } from '../support/wait';

let broker: Broker | null = null;

afterEach(async () => {
  await broker?.close();
});

describe('broker connect sequence', () => {
  it('discards a connection the broker closes while setup runs, and connects again', async () => {
    const name = `wagate-test setup-close ${randomBytes(4).toString('hex')}`;
    const setups: ConfirmChannel[] = [];
    const signals: AbortSignal[] = [];
    broker = createBroker({
      url: TEST_AMQP_URL,
      name,
      log: createLogger('silent', 'wagate-test'),
      reconnectDelayMs: { min: 50, max: 200 },
      async setup(channel, _connection, lost) {
        setups.push(channel);
        signals.push(lost);
        if (setups.length > 1) return;
        // The first setup is cut short by the broker: the connection is gone before setup returns.
        const closed = new Promise((resolve) => channel.once('close', resolve));
        expect(await closeConnection(name)).toBe(1);
        await closed;
      },
    });
    await waitFor('a second setup on a new connection', () => setups.length >= 2, 60_000);
    await broker.waitUntilConnected(30_000);
    expect(broker.channel()).toBe(setups[1]);
    // What setup handed the first connection to can tell it was lost; the live one's signal is not.
    expect(signals.map((signal) => signal.aborted)).toEqual([true, false]);
    // The live channel answers: a dead one would reject with "Channel closed".
    await expect(broker.channel()!.checkExchange('amq.direct')).resolves.toBeDefined();
  }, 120_000);
});
