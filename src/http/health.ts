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

/** Ready while Postgres answers; the broker's state is reported and, for ingest only, tolerated. */
export function createReadinessHandler(deps: HealthDeps) {
  return async function checkReadiness(_req: Request, res: Response): Promise<void> {
    const postgres = await deps.sql`SELECT 1`.then(
      () => 'ok' as const,
      () => 'unavailable' as const,
    );
    const broker = deps.isBrokerConnected() ? 'connected' : 'disconnected';
    const draining = deps.isDraining();
    const ready = postgres === 'ok' && !draining && (!deps.brokerRequired || broker === 'connected');
    res.status(ready ? 200 : 503).json({ status: ready ? 'ready' : 'not ready', postgres, broker, draining });
  };
}
