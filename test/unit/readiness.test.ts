import { judgeReadiness, type ReadinessInputs } from '../../src/server/readiness';

const healthy: ReadinessInputs = { postgres: 'ok', brokerConnected: true, draining: false, brokerRequired: false };

describe('judgeReadiness', () => {
  it('is ready when Postgres answers, and says nothing of a warm-up that is over', () => {
    expect(judgeReadiness({ ...healthy, warmingUp: false })).toEqual({
      ready: true,
      body: { status: 'ready', postgres: 'ok', broker: 'connected', draining: false },
    });
  });

  it('is not ready while warming up, and says so', () => {
    expect(judgeReadiness({ ...healthy, warmingUp: true })).toEqual({
      ready: false,
      body: { status: 'not ready', postgres: 'ok', broker: 'connected', draining: false, warmingUp: true },
    });
  });

  it('is not ready while draining or when Postgres does not answer; a broker outage counts only where the broker is required', () => {
    expect(judgeReadiness({ ...healthy, draining: true }).ready).toBe(false);
    expect(judgeReadiness({ ...healthy, postgres: 'unavailable' }).ready).toBe(false);
    expect(judgeReadiness({ ...healthy, postgres: 'read-only' })).toEqual({
      ready: false,
      body: { status: 'not ready', postgres: 'read-only', broker: 'connected', draining: false },
    });
    expect(judgeReadiness({ ...healthy, brokerConnected: false }).ready).toBe(true);
    expect(judgeReadiness({ ...healthy, brokerConnected: false, brokerRequired: true }).ready).toBe(false);
  });

  it('says the broker blocks its connection, and stays ready on it as on any broker trouble ingest survives', () => {
    expect(judgeReadiness({ ...healthy, brokerBlocked: true })).toEqual({
      ready: true,
      body: { status: 'ready', postgres: 'ok', broker: "blocked by a resource alarm: check the broker's memory and disk", draining: false },
    });
    // Blocked is a state of a live connection: a lost one is reported as lost.
    expect(judgeReadiness({ ...healthy, brokerConnected: false, brokerBlocked: true }).body.broker).toBe('disconnected');
  });
});
