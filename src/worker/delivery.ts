import type { ConsumeMessage } from 'amqplib';
import { classifyPostgresError, isLockTimeout, isStatementOverLimit } from '../db/postgres-errors';
import { amqpMessageId, queueMessageSchema, type QueueMessage } from '../queue/message';

/**
 * Postgres cannot be reached at all. A statement timeout is not that, nor a statement past its
 * own temp-file limit: one message's slow or large query must use up its tries like any other
 * failure, or it would wait forever, and a batch that fails so is split.
 */
export function isDatabaseDown(error: unknown): boolean {
  return classifyPostgresError(error) === 'DATABASE_UNAVAILABLE' && !isStatementOverLimit(error);
}

/** A statement timed out, or gave up waiting for a lock: Postgres was slow, or a row was held. */
export function isSlowStatement(error: unknown): boolean {
  return classifyPostgresError(error) === 'DATABASE_STATEMENT_TIMEOUT' || isLockTimeout(error);
}

export function numberHeader(delivery: ConsumeMessage, name: string): number | undefined {
  const value = Number(delivery.properties.headers?.[name]);
  return Number.isFinite(value) ? value : undefined;
}

export function parseDelivery(delivery: ConsumeMessage): QueueMessage | string {
  let json: unknown;
  try {
    json = JSON.parse(delivery.content.toString('utf8'));
  } catch {
    return 'queue message is not JSON';
  }
  const parsed = queueMessageSchema.safeParse(json);
  if (!parsed.success) return `queue message does not match the contract: ${parsed.error.issues[0]?.path.join('.')}`;
  if (delivery.properties.messageId && delivery.properties.messageId !== amqpMessageId(parsed.data.source, parsed.data.messageId)) {
    return 'queue message id does not match its body';
  }
  return parsed.data;
}

export function describe(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  return message.slice(0, 500);
}

export function safely(action: () => void): void {
  try {
    action();
  } catch {
    // The channel is gone; the broker requeues what was unacked.
  }
}
