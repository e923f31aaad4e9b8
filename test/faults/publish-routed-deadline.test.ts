import amqp from 'amqplib';
import { publishRouted } from '../../src/queue/publish-routed';
import { TEST_AMQP_URL } from '../support/amqp';
import { randomQueuePrefix } from '../support/ingest';
import { startProxyFor, type TcpProxy } from '../support/tcp-proxy';

/**
 * The operator commands that move messages (dlq replay, reshard) wait for each one's confirm
 * before acking its source. A broker that stops answering (a connection blocked by an alarm, a
 * stalled link) must end the wait with an error that says what to do, not hold the command.
 */
const CONFIRM_TIMEOUT_MS = 500;

let proxy: TcpProxy;
let connection: amqp.ChannelModel;
let channel: amqp.ConfirmChannel;
const queue = `${randomQueuePrefix()}.routed-deadline`;

beforeAll(async () => {
  const proxied = await startProxyFor(TEST_AMQP_URL, 5672);
  proxy = proxied.proxy;
  connection = await amqp.connect(proxied.url);
  connection.on('error', () => undefined);
  channel = await connection.createConfirmChannel();
  channel.on('error', () => undefined);
  await channel.assertQueue(queue, { durable: false, autoDelete: false });
}, 30_000);

afterAll(async () => {
  proxy.setMode('forward');
  const cleanup = await amqp.connect(TEST_AMQP_URL);
  await (await cleanup.createChannel()).deleteQueue(queue).catch(() => undefined);
  await cleanup.close();
  await connection.close().catch(() => undefined);
  await proxy.close();
}, 30_000);

it('gives up on a confirm that never comes, naming the message and what to check', async () => {
  const options = { persistent: true, mandatory: true as const, messageId: 'whatsapp:wamid.routed-ok' };
  // The path works before the stall: routed and confirmed.
  expect(await publishRouted(channel, '', queue, Buffer.from('{}'), options, CONFIRM_TIMEOUT_MS)).toBe(true);

  proxy.setMode('blackhole');
  const stalled = publishRouted(channel, '', queue, Buffer.from('{}'), { ...options, messageId: 'whatsapp:wamid.routed-stalled' }, CONFIRM_TIMEOUT_MS);
  await expect(stalled).rejects.toThrow(/RabbitMQ did not confirm whatsapp:wamid\.routed-stalled .* within 500 ms; .*alarm/);
});
