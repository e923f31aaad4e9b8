import { createMetrics } from '../../src/telemetry/metrics';

/** The upper bounds (le) a histogram exports, read the way Prometheus scrapes them. */
async function bucketBounds(histogram: { observe(value: number): void; get(): Promise<{ values: { labels: Record<string, unknown>; metricName?: string }[] }> }) {
  histogram.observe(0);
  const { values } = await histogram.get();
  return values.filter((value) => value.metricName?.endsWith('_bucket')).map((value) => String(value.labels.le));
}

describe('latency buckets', () => {
  it('count the acks within the 300 ms target and the SLO\'s 20 ms, not a guess between edges', async () => {
    const { ackDuration } = createMetrics('ingest', { processMetrics: false });
    expect(await bucketBounds({ observe: (value) => ackDuration.observe({ source: 'whatsapp', verified: 'true' }, value), get: () => ackDuration.get() })).toEqual(
      expect.arrayContaining(['0.02', '0.3', '1.5', '2']),
    );
  });

  it('read an ack and a commit past the 7 s commit deadline, where a Postgres stall answers 503', async () => {
    const { ackDuration, ledgerCommitDuration } = createMetrics('ingest', { processMetrics: false });
    expect(await bucketBounds({ observe: (value) => ackDuration.observe({ source: 'whatsapp', verified: 'true' }, value), get: () => ackDuration.get() }))
      .toEqual(expect.arrayContaining(['5', '7.5', '10', '30', '+Inf']));
    expect(await bucketBounds(ledgerCommitDuration)).toEqual(expect.arrayContaining(['5', '7.5', '10', '30', '+Inf']));
  });

  it('read a broker confirm past 5 s up to the 10 s confirm timeout and beyond', async () => {
    const { publishDuration } = createMetrics('ingest', { processMetrics: false });
    expect(await bucketBounds(publishDuration)).toEqual(expect.arrayContaining(['5', '10', '15', '30', '+Inf']));
  });

  it('read a provider call, and the message it was made for, past the default 10 s REPLY_TIMEOUT_MS up to a minute', async () => {
    const { providerDuration, workerDuration } = createMetrics('worker', { processMetrics: false });
    expect(await bucketBounds({ observe: (value) => providerDuration.observe({ provider: 'whatsapp' }, value), get: () => providerDuration.get() }))
      .toEqual(expect.arrayContaining(['10', '15', '30', '60', '+Inf']));
    expect(await bucketBounds(workerDuration)).toEqual(expect.arrayContaining(['10', '15', '30', '60', '+Inf']));
  });
});
