import { everyRequestAcknowledged } from '../../bench/checks';
import type { PhaseResult } from '../../bench/scenarios';

const phase = (ok: number, non2xx: number, errors: number): PhaseResult => ({
  server: 'wagate durable',
  requestsPerSecond: ok / 5,
  ok,
  non2xx,
  errors,
  latencyMs: { p50: 1, p90: 2, p99: 3, max: 4 },
  peakRssMib: 100,
  cpuCores: { server: 0.5, postgres: 0.3, rabbitmq: 0.2, loadGenerator: 0.2, other: 0, machineCores: 1.2 },
});

describe('the bench check that the durable server acknowledged what it was timed on', () => {
  it('passes when every measured request was answered 200', () => {
    expect(everyRequestAcknowledged('ingest', [phase(5_000, 0, 0), phase(2_500, 0, 0)])).toMatchObject({ ok: true, detail: '7500 answered 200, 0 answered otherwise, 0 not answered' });
  });

  it('fails a server that answered fast but refused (a wrong secret, a 503 while shedding), or answered nothing', () => {
    expect(everyRequestAcknowledged('ingest', [phase(0, 5_000, 0)]).ok).toBe(false);
    expect(everyRequestAcknowledged('ingest', [phase(4_999, 1, 0)]).ok).toBe(false);
    expect(everyRequestAcknowledged('ack-after', [phase(5_000, 0, 3)]).ok).toBe(false);
    expect(everyRequestAcknowledged('ingest', []).ok).toBe(false);
  });
});
