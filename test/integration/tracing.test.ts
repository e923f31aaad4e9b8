import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { NodeSDK } from '@opentelemetry/sdk-node';
import { InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace';
import { isTracingConfigured } from '../../src/telemetry/tracing';
import { startOtlpReceiver, type OtlpReceiver } from '../support/otlp-receiver';
import { startPipeline, type Pipeline } from '../support/pipeline';
import { spawnWagate, type ChildIngest } from '../support/process';
import { postMetaText, uniqueWamid } from '../support/webhooks';
import { waitFor } from '../support/wait';

describe('tracing switch', () => {
  it('starts only when an OTLP endpoint is configured', () => {
    expect(isTracingConfigured({})).toBe(false);
    expect(isTracingConfigured({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318' })).toBe(true);
    expect(isTracingConfigured({ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://collector:4318/v1/traces' })).toBe(true);
    expect(isTracingConfigured({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318', OTEL_SDK_DISABLED: 'true' })).toBe(false);
  });

  it('does not even load the SDK or its instrumentations without an endpoint', () => {
    const bootstrap = path.join(__dirname, '..', '..', 'dist', 'tracing-bootstrap.js');
    const loadedOpenTelemetry = (env: Record<string, string>) => {
      const script = `require(${JSON.stringify(bootstrap)}); console.log(JSON.stringify(Object.keys(require.cache).filter((file) => /@opentelemetry[\\/](sdk-node|instrumentation-|exporter-)/.test(file)).length))`;
      const child = spawnSync(process.execPath, ['-e', script], { env: { PATH: process.env.PATH ?? '', ...env }, encoding: 'utf8' });
      return Number(child.stdout.trim());
    };
    expect(loadedOpenTelemetry({})).toBe(0);
    expect(loadedOpenTelemetry({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:1' })).toBeGreaterThan(0);
  });
});

describe('one trace from webhook to reply', () => {
  let pipeline: Pipeline;

  beforeAll(async () => {
    pipeline = await startPipeline();
  });

  afterAll(async () => {
    await pipeline.stop();
  });

  it('carries the trace through RabbitMQ headers to the worker (in-memory exporter)', async () => {
    const exporter = new InMemorySpanExporter();
    const sdk = new NodeSDK({ serviceName: 'wagate-test', spanProcessors: [new SimpleSpanProcessor({ exporter })], instrumentations: [], metricReaders: [], logRecordProcessors: [] });
    sdk.start();
    try {
      await pipeline.startWorker();
      const id = uniqueWamid();
      await postMetaText(pipeline.ingest.baseUrl, { id, from: '15550500001', text: '1 coke' });
      const spans = await waitFor('the reply span', () => {
        const finished = exporter.getFinishedSpans();
        return finished.some((span) => span.name === 'wagate.process') ? finished : null;
      });
      const ledger = spans.find((span) => span.name === 'wagate.ledger.record')!;
      const traceId = ledger.spanContext().traceId;
      const inTrace = spans.filter((span) => span.spanContext().traceId === traceId).map((span) => span.name);
      expect(inTrace).toEqual(
        expect.arrayContaining(['wagate.ledger.record', 'wagate.process', 'wagate.claim', 'wagate.match', 'wagate.order.record', 'wagate.reply.send']),
      );
    } finally {
      // The in-process worker would otherwise stay the shards' active consumer.
      await Promise.all(pipeline.workers.splice(0).map((worker) => worker.stop()));
      await sdk.shutdown();
    }
  });

  describe.each(['http/json', 'http/protobuf'])('over OTLP %s', (protocol) => {
    let receiver: OtlpReceiver;
    let children: ChildIngest[] = [];

    beforeAll(async () => {
      receiver = await startOtlpReceiver();
      const env = {
        ...pipeline.env,
        OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
        OTEL_EXPORTER_OTLP_PROTOCOL: protocol,
        OTEL_BSP_SCHEDULE_DELAY: '100',
      };
      children = [await spawnWagate('ingest', env), await spawnWagate('worker', env)];
    });

    afterAll(async () => {
      await Promise.all(children.map((child) => child.stop()));
      await receiver.close();
    });

    it('exports spans from both processes', async () => {
      const id = uniqueWamid();
      expect((await postMetaText(children[0]!.baseUrl, { id, from: '15550500002', text: '1 coke' })).status).toBe(200);
      await waitFor('the message to be processed', async () =>
        (await pipeline.db.sql`SELECT status FROM webhook_messages WHERE message_id = ${id}`)[0]?.status === 'processed',
      );
      const expectedType = protocol === 'http/json' ? 'application/json' : 'application/x-protobuf';
      // wagate.process ends last (after the reply and the status), so it is exported last.
      const spans = await waitFor('worker spans to arrive', () => {
        const all = receiver.spans();
        return all.some((s) => s.name === 'wagate.reply.send') && all.some((s) => s.name === 'wagate.process') ? all : null;
      });
      const ledger = spans.find((s) => s.name === 'wagate.ledger.record' && s.service === 'wagate-ingest')!;
      const trace = spans.filter((s) => s.traceId === ledger.traceId);
      const names = trace.map((s) => `${s.service}:${s.name}`);
      // HTTP server span, the ledger write, the AMQP publish and consume, the pipeline steps.
      expect(names).toEqual(expect.arrayContaining(['wagate-ingest:wagate.ledger.record', 'wagate-worker:wagate.process', 'wagate-worker:wagate.reply.send']));
      expect(trace.some((s) => s.service === 'wagate-ingest' && /POST/.test(s.name))).toBe(true);
      expect(trace.filter((s) => /publish|send|->/i.test(s.name) && s.service === 'wagate-ingest').length).toBeGreaterThan(0);
      // The worker's side: the amqplib consume span and the provider call, in the same trace.
      expect(trace.some((s) => s.service === 'wagate-worker' && /process|receive|consume/i.test(s.name) && s.name !== 'wagate.process')).toBe(true);
      expect(trace.some((s) => s.service === 'wagate-worker' && /^POST/.test(s.name))).toBe(true);
      // One trace, one root: the webhook's HTTP request.
      expect(trace.filter((s) => s.parentSpanId === '')).toHaveLength(1);
      expect(receiver.contentTypes().every((type) => type.startsWith(expectedType))).toBe(true);
    });
  });
});
