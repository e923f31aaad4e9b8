import type { Sql } from '../../src/db/client';
import { eraseCustomer } from '../../src/orders/erase-customer';
import { reopenDeadMessage } from '../../src/orders/reopen-dead-message';
import { dropDeadLetters, listDeadLetters, replayDeadLetters, type DeadLetter, type ReplayReport } from '../../src/queue/dead-letters';
import { withOperatorChannel } from '../../src/queue/operator-channel';
import type { Topology } from '../../src/queue/topology';
import { createLogger } from '../../src/telemetry/logger';
import { TEST_AMQP_URL } from './amqp';

/** What `wagate dlq list` does: every dead letter, none removed. */
export function listDead(topology: Topology): Promise<DeadLetter[]> {
  return withOperatorChannel(operator(topology), (channel) => listDeadLetters(channel, topology));
}

/** What `wagate dlq replay --id …` does: reopen the records, republish, ack. */
export function replayDead(sql: Sql, topology: Topology, ids?: string[]): Promise<ReplayReport> {
  return withOperatorChannel(operator(topology), (channel) => replayDeadLetters(channel, topology, (message, unsent, republish) => reopenDeadMessage(sql, message, unsent, republish), ids));
}

export function operator(topology: Topology) {
  return { url: TEST_AMQP_URL, topology, log: createLogger('silent', 'test-operator') };
}

/** What `wagate erase --phone` does: the database first, then the customer's dead letters. */
export function eraseEverywhere(sql: Sql, topology: Topology, phone: string): Promise<Record<string, number>> {
  return eraseCustomer(sql, phone, (matches) => withOperatorChannel(operator(topology), (channel) => dropDeadLetters(channel, topology, matches)));
}
