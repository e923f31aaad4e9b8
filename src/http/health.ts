import type { Request, Response } from 'express';
import type { Sql } from '../db/client';

export interface HealthDeps {
  sql: Sql;
  isBrokerConnected(): boolean;
  isDraining(): boolean;
  /** Ingest survives a broker outage through the outbox; the worker cannot. */
  brokerRequired: boolean;
}

export function livenessHandler(_req: Request, res: Response): void {
  res.status(200).json({ status: 'ok' });
}

/**
 * A database that hangs without closing connections never fails the query; the probe must
 * still answer, and within a typical probe timeout.
 */
const READY_CHECK_TIMEOUT_MS = 2000;

/** Whether Postgres answers a trivial query within the probe's deadline; shared by ingest and worker. */
export function postgresAnswers(sql: Sql): Promise<'ok' | 'unavailable'> {
  return answersWithin(sql`SELECT 1`, READY_CHECK_TIMEOUT_MS);
}

async function answersWithin(query: Promise<unknown>, timeoutMs: number): Promise<'ok' | 'unavailable'> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<'unavailable'>((resolve) => {
    timer = setTimeout(() => resolve('unavailable'), timeoutMs);
  });
  const answered = query.then(() => 'ok' as const, () => 'unavailable' as const);
  return Promise.race([answered, timeout]).finally(() => clearTimeout(timer));
}

/** Ready while Postgres answers; the broker's state is reported and, for ingest only, tolerated. */
export function createReadinessHandler(deps: HealthDeps) {
  return async function checkReadiness(_req: Request, res: Response): Promise<void> {
    const postgres = await postgresAnswers(deps.sql);
    const broker = deps.isBrokerConnected() ? 'connected' : 'disconnected';
    const draining = deps.isDraining();
    const ready = postgres === 'ok' && !draining && (!deps.brokerRequired || broker === 'connected');
    res.status(ready ? 200 : 503).json({ status: ready ? 'ready' : 'not ready', postgres, broker, draining });
  };
}
