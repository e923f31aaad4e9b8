import type { Request, Response } from 'express';
import type { Sql } from '../db/client';
import { postgresAnswers } from '../db/health';
import { judgeReadiness, type Readiness } from '../server/readiness';

export interface HealthDeps {
  sql: Sql;
  isBrokerConnected(): boolean;
  isBrokerLoginRefused?(): boolean;
  isDraining(): boolean;
  isWarmingUp?(): boolean;
  /** Ingest survives a broker outage through the outbox; the worker cannot. */
  brokerRequired: boolean;
}

export function livenessHandler(_req: Request, res: Response): void {
  res.status(200).json({ status: 'ok' });
}

/** Ready while Postgres answers; the broker's state is reported and, for ingest only, tolerated. */
export async function assessReadiness(deps: HealthDeps): Promise<Readiness> {
  return judgeReadiness({
    postgres: await postgresAnswers(deps.sql),
    brokerConnected: deps.isBrokerConnected(),
    brokerLoginRefused: deps.isBrokerLoginRefused?.() ?? false,
    draining: deps.isDraining(),
    warmingUp: deps.isWarmingUp?.() ?? false,
    brokerRequired: deps.brokerRequired,
  });
}

export function createReadinessHandler(deps: HealthDeps) {
  return async function checkReadiness(_req: Request, res: Response): Promise<void> {
    const { ready, body } = await assessReadiness(deps);
    res.status(ready ? 200 : 503).json(body);
  };
}
