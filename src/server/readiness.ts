/** As db/health's probe answers; 'read-only': a server that takes no writes, where nothing can be recorded. */
type PostgresAnswer = 'ok' | 'read-only' | 'unavailable';

export interface ReadinessInputs {
  postgres: PostgresAnswer;
  brokerConnected: boolean;
  /** The broker refuses our login: wrong credentials, which waiting will not fix. */
  brokerLoginRefused?: boolean;
  /**
   * The broker blocks our publishing connection (a memory or disk alarm): connected, but it
   * takes nothing more until the alarm clears; ingest acks from the outbox meanwhile.
   */
  brokerBlocked?: boolean;
  draining: boolean;
  /** Still opening its pool and preparing its statements: traffic now would meet cold connections. */
  warmingUp?: boolean;
  /** Ingest survives a broker outage through the outbox; the worker cannot. */
  brokerRequired: boolean;
}

export interface Readiness {
  ready: boolean;
  body: {
    status: 'ready' | 'not ready';
    postgres: PostgresAnswer;
    broker: 'connected' | 'disconnected' | 'login refused: check AMQP_URL credentials' | typeof BLOCKED;
    draining: boolean;
    warmingUp?: true;
  };
}

const BLOCKED = 'blocked by a resource alarm: check the broker\'s memory and disk';

/**
 * Ready while Postgres answers and takes writes, and the process is neither warming up nor draining; the
 * broker's state is reported and, for ingest only, tolerated.
 */
export function judgeReadiness(inputs: ReadinessInputs): Readiness {
  const broker = inputs.brokerConnected
    ? inputs.brokerBlocked ? BLOCKED : 'connected'
    : inputs.brokerLoginRefused ? 'login refused: check AMQP_URL credentials' : 'disconnected';
  const warmingUp = inputs.warmingUp === true;
  const ready = inputs.postgres === 'ok' && !inputs.draining && !warmingUp && (!inputs.brokerRequired || inputs.brokerConnected);
  const body: Readiness['body'] = { status: ready ? 'ready' : 'not ready', postgres: inputs.postgres, broker, draining: inputs.draining };
  if (warmingUp) body.warmingUp = true;
  return { ready, body };
}
