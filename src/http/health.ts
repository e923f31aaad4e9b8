import type { Request, Response } from 'express';
import type { PostgresCheck } from '../db/health';
import type { Liveness } from '../db/stall-watch';
import { judgeReadiness, type Readiness } from '../server/readiness';

export interface HealthDeps {
  /** One question to Postgres shared by every caller at once (createSharedPostgresCheck). */
  postgresAnswers: PostgresCheck;
  isBrokerConnected(): boolean;
  isBrokerLoginRefused?(): boolean;
  isBrokerBlocked?(): boolean;
  isDraining(): boolean;
  isWarmingUp?(): boolean;
  /** Ingest survives a broker outage through the outbox; the worker cannot. */
  brokerRequired: boolean;
  /** Alive unless told otherwise (stallLiveness: Postgres left a statement unanswered past its timeouts). */
  liveness?(): Liveness;
}

export function createLivenessHandler(deps: Pick<HealthDeps, 'liveness'>) {
  return function checkLiveness(_req: Request, res: Response): void {
    const { alive, body } = deps.liveness?.() ?? { alive: true, body: { status: 'ok' } };
    res.status(alive ? 200 : 503).json(body);
  };
}

/** Ready while Postgres answers; the broker's state is reported and, for ingest only, tolerated. */
export async function assessReadiness(deps: HealthDeps): Promise<Readiness> {
  return judgeReadiness({
    postgres: await deps.postgresAnswers(),
    brokerConnected: deps.isBrokerConnected(),
    brokerLoginRefused: deps.isBrokerLoginRefused?.() ?? false,
    brokerBlocked: deps.isBrokerBlocked?.() ?? false,
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
