import { createDatabase, closeDatabase, type Sql } from '../../src/db/client';
import { deliverReply } from '../../src/orders/deliver-reply';
import type { OutboundRow } from '../../src/orders/record-decision';
import type { ReplyClient } from '../../src/replies/reply-clients';
import { createMetrics } from '../../src/telemetry/metrics';
import { freePort } from '../support/free-port';

/**
 * A mark that may have committed leaves its token for the message's next attempt; one whose
 * statement never reached Postgres (the connection refused) does not: during an outage such
 * marks crowded the token the reply was 'sending' under out of the few a retry carries.
 */
const OUTBOUND: OutboundRow = { id: '1', kind: 'order_confirmation', status: 'pending', recipient: '15550700001', business_number: '100', body: 'ok', order_id: null, attempts: 0 };
const metrics = createMetrics('worker', { processMetrics: false });
const neverCalled: ReplyClient = { send: async () => { throw new Error('the provider must not be called'); } } as unknown as ReplyClient;
let nowhere: Sql;

beforeAll(async () => {
  nowhere = createDatabase({ url: `postgres://postgres@127.0.0.1:${await freePort()}/nothing`, maxConnections: 1, connectTimeoutSeconds: 2, statementTimeoutMs: 5000, applicationName: 'test' });
});

afterAll(async () => {
  await closeDatabase(nowhere);
});

it('carries no token of a mark whose connection was refused', async () => {
  const told: string[] = [];
  await expect(deliverReply(nowhere, 'whatsapp', OUTBOUND, neverCalled, metrics, { onMarkUnanswered: (token) => void told.push(token) }))
    .rejects.toMatchObject({ code: 'ECONNREFUSED' });
  expect(told).toEqual([]);
});

it('carries no token of a mark whose connection was refused at every address of its host', async () => {
  // Refused at each address a name resolves to, the connect raises the errors together.
  const everywhere = Object.assign(new AggregateError([
    Object.assign(new Error('connect ECONNREFUSED ::1:5432'), { code: 'ECONNREFUSED', syscall: 'connect' }),
    Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED', syscall: 'connect' }),
  ]), { code: 'ECONNREFUSED' });
  const told: string[] = [];
  const refused = async () => { throw everywhere; };
  await expect(deliverReply(nowhere, 'whatsapp', OUTBOUND, neverCalled, metrics, { markSending: refused, onMarkUnanswered: (token) => void told.push(token) }))
    .rejects.toBe(everywhere);
  expect(told).toEqual([]);
});

it.each([
  ['its connection closed', { code: 'CONNECTION_CLOSED' }],
  // A peer that vanished ends an established socket with the errno a failed connect has too.
  ['its established socket lost its host', { code: 'EHOSTUNREACH', errno: -113, syscall: 'read' }],
])('carries the token of a mark whose statement went out, and %s', async (_how, failure) => {
  const told: string[] = [];
  const lost = async () => { throw Object.assign(new Error('lost'), failure); };
  await expect(deliverReply(nowhere, 'whatsapp', OUTBOUND, neverCalled, metrics, { markSending: lost, attempt: 'attempt-1', onMarkUnanswered: (token) => void told.push(token) }))
    .rejects.toMatchObject({ code: failure.code });
  expect(told).toEqual(['attempt-1']);
});
