import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { SpanKind } from '@opentelemetry/api';
import { NodeSDK } from '@opentelemetry/sdk-node';
import { InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace';
import { isTracingConfigured, startTracing, tracesProtocol } from '../../src/telemetry/tracing';
import type { GetMessage } from 'amqplib';
import { openQueueProbe, type QueueProbe } from '../support/amqp';
import { startOtlpReceiver, type OtlpReceiver, type ReceivedSpan } from '../support/otlp-receiver';
import { startPipeline, type Pipeline } from '../support/pipeline';
import { spawnWagate, type ChildIngest } from '../support/process';
import { postMeta, postMetaText, uniqueWamid } from '../support/webhooks';
import { META_WEBHOOK_PATH } from '../../src/webhooks/meta';
import { metaTextEnvelope } from '../../src/webhooks/samples';
import { STATS_PATH } from '../../src/http/app';
import { ADMIN_TOKEN, VERIFY_TOKEN } from '../support/ingest';
import { waitFor } from '../support/wait';

/** OTLP's SpanKind values. */
const SPAN_KIND = { server: 2, producer: 4, consumer: 5 } as const;

describe('tracing switch', () => {
  it('starts only when an OTLP endpoint is configured', () => {
    expect(isTracingConfigured({})).toBe(false);
    expect(isTracingConfigured({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318' })).toBe(true);
    expect(isTracingConfigured({ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://collector:4318/v1/traces' })).toBe(true);
    expect(isTracingConfigured({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318', OTEL_SDK_DISABLED: 'true' })).toBe(false);
  });

  it('refuses an unsupported protocol, naming the variable that set it', () => {
    const start = (env: Record<string, string>) => () => startTracing({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:1', ...env }, { command: 'ingest' });
    expect(start({ OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc' })).toThrow('OTEL_EXPORTER_OTLP_PROTOCOL: "grpc" is not supported; use http/protobuf or http/json');
    expect(start({ OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json', OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: 'grpc' }))
      .toThrow('OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: "grpc" is not supported');
  });

  it('takes an empty protocol variable for unset, as a compose file\'s ${X:-} passes one', () => {
    expect(tracesProtocol({ OTEL_EXPORTER_OTLP_PROTOCOL: '' })).toBe('http/protobuf');
    expect(tracesProtocol({ OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json', OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: '' })).toBe('http/json');
    expect(tracesProtocol({ OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json', OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: 'http/protobuf' })).toBe('http/protobuf');
  });

  it('reads the collector\'s headers from a file, refusing one it cannot read or a value set twice', () => {
    const start = (env: Record<string, string>) => () => startTracing({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:1', ...env }, { command: 'ingest' });
    expect(start({ OTEL_EXPORTER_OTLP_HEADERS: 'authorization=Bearer a', OTEL_EXPORTER_OTLP_HEADERS_FILE: '/etc/hostname' }))
      .toThrow('OTEL_EXPORTER_OTLP_HEADERS and OTEL_EXPORTER_OTLP_HEADERS_FILE are both set; set only one');
    expect(start({ OTEL_EXPORTER_OTLP_TRACES_HEADERS_FILE: path.join(os.tmpdir(), `no-such-file-${randomBytes(4).toString('hex')}`) }))
      .toThrow(/^OTEL_EXPORTER_OTLP_TRACES_HEADERS_FILE: cannot read the file \/.* \(ENOENT\)$/);
    expect(start({ OTEL_EXPORTER_OTLP_HEADERS: 'authorization=Bearer a\u0000b' }))
      .toThrow('OTEL_EXPORTER_OTLP_HEADERS: a header holds a control character, which no HTTP request may carry');
  });

  it('does not even load the SDK or its instrumentations without an endpoint', () => {
    const bootstrap = path.join(__dirname, '..', '..', 'dist', 'tracing-bootstrap.js');
    const loadedOpenTelemetry = (env: Record<string, string>, command = 'ingest') => {
      const script = `require(${JSON.stringify(bootstrap)}); console.log(JSON.stringify(Object.keys(require.cache).filter((file) => /@opentelemetry[\\/](sdk-node|instrumentation-|exporter-)/.test(file)).length))`;
      // After -e, process.argv holds node and the arguments: the command is the second, as in `node dist/main.js <command>`.
      const child = spawnSync(process.execPath, ['-e', script, 'main.js', command], { env: { PATH: process.env.PATH ?? '', ...env }, encoding: 'utf8' });
      return Number(child.stdout.trim());
    };
    expect(loadedOpenTelemetry({})).toBe(0);
    expect(loadedOpenTelemetry({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:1' })).toBeGreaterThan(0);
  });

  it('traces only the services a message passes through, not the autoscaler or a one-shot command', () => {
    const endpoint = { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:1' };
    for (const command of ['autoscaler', 'send', 'replies', 'migrate']) expect(startTracing(endpoint, { command })).toBeNull();
    // Their settings are checked all the same: the migration hook refuses what would stop the ingest.
    expect(() => startTracing({ ...endpoint, OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc' }, { command: 'migrate' })).toThrow('OTEL_EXPORTER_OTLP_PROTOCOL: "grpc" is not supported');
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

  describe('in this process (in-memory exporter)', () => {
    // One SDK for these tests: the API keeps the first provider it was given, so a second SDK's
    // spans would go to the first one, shut down.
    const exporter = new InMemorySpanExporter();
    const sdk = new NodeSDK({ serviceName: 'wagate-test', spanProcessors: [new SimpleSpanProcessor({ exporter })], instrumentations: [], metricReaders: [], logRecordProcessors: [] });

    beforeAll(() => sdk.start());

    afterAll(() => sdk.shutdown());

    beforeEach(() => exporter.reset());

    it('carries the trace through RabbitMQ headers to the worker', async () => {
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
      }
    });

    it('links, not parents, the traceparent of a caller that is not a trusted proxy, so that it cannot choose the trace', async () => {
      // The pipeline's ingest trusts no proxy (TRACE_TRUSTED_PROXIES unset, the default).
      const callerTraceId = randomBytes(16).toString('hex');
      const callerSpanId = randomBytes(8).toString('hex');
      const reply = await postMeta(pipeline.ingest.baseUrl, metaTextEnvelope({ id: uniqueWamid(), from: '15550500011', text: '1 coke' }), {
        headers: { traceparent: `00-${callerTraceId}-${callerSpanId}-01` },
      });
      expect(reply.status).toBe(200);
      const server = await waitFor('the server span', () => exporter.getFinishedSpans().find((span) => span.kind === SpanKind.SERVER) ?? null);
      expect(server.spanContext().traceId).not.toBe(callerTraceId);
      expect(server.parentSpanContext).toBeUndefined();
      expect(server.links.map((link) => [link.context.traceId, link.context.spanId])).toEqual([[callerTraceId, callerSpanId]]);
    });
  });

  // b3multi: a Zipkin mesh's headers, where wagate still carries its own traceparent through retries.
  describe.each([
    ['http/json', 'tracecontext,baggage'],
    ['http/protobuf', 'tracecontext,baggage'],
    ['http/json', 'b3multi'],
  ])('over OTLP %s, propagating %s', (protocol, propagators) => {
    let receiver: OtlpReceiver;
    let children: ChildIngest[] = [];

    beforeAll(async () => {
      receiver = await startOtlpReceiver();
      const env = exportingTo(pipeline, receiver, { OTEL_EXPORTER_OTLP_PROTOCOL: protocol, OTEL_PROPAGATORS: propagators });
      children = [await spawnWagate('ingest', env), await spawnWagate('worker', env)];
    });

    afterAll(async () => {
      await Promise.all(children.map((child) => child.stop()));
      await receiver.close();
    });

    it('leaves the ingest warm-up rehearsal out of the traces', async () => {
      const warmedUp = children[0]!.logs.find((entry) => String(entry.msg).startsWith('ingest warmed up'));
      expect(warmedUp?.rehearsed).toBeGreaterThan(0);
      const id = uniqueWamid();
      expect((await postMetaText(children[0]!.baseUrl, { id, from: '15550500009', text: '1 coke' })).status).toBe(200);
      await waitFor('its server span', () => traceOfMessage(receiver.spans(), id).some((s) => s.kind === SPAN_KIND.server));
      // Spans leave in export order, so the rehearsal's would have arrived before this one's.
      expect(receiver.spans().filter((s) => s.service === 'wagate-ingest' && s.kind === SPAN_KIND.server)).toHaveLength(1);
    });

    it('exports the documented trace from both processes: server span, ledger, publish, consume', async () => {
      const id = uniqueWamid();
      expect((await postMetaText(children[0]!.baseUrl, { id, from: '15550500002', text: '1 coke' })).status).toBe(200);
      await waitFor('the message to be processed', async () =>
        (await pipeline.db.sql`SELECT status FROM webhook_messages WHERE message_id = ${id}`)[0]?.status === 'processed',
      );
      const expectedType = protocol === 'http/json' ? 'application/json' : 'application/x-protobuf';
      // wagate.process ends last (after the reply and the status), so it is exported last.
      const trace = await waitFor('ingest and worker spans to arrive', () => {
        const inTrace = traceOfMessage(receiver.spans(), id);
        const arrived = ['wagate.reply.send', 'wagate.process', `POST ${META_WEBHOOK_PATH}`].every((name) => inTrace.some((s) => s.name === name));
        return arrived ? inTrace : null;
      });
      const ledger = trace.find((s) => s.name === 'wagate.ledger.record' && s.service === 'wagate-ingest')!;
      const names = trace.map((s) => `${s.service}:${s.name}`);
      expect(names).toEqual(expect.arrayContaining(['wagate-ingest:wagate.ledger.record', 'wagate-worker:wagate.process', 'wagate-worker:wagate.reply.send']));
      // One trace, one root: the webhook's server span, opened once (not also by the HTTP instrumentation).
      const servers = trace.filter((s) => s.service === 'wagate-ingest' && s.kind === SPAN_KIND.server);
      expect(servers).toHaveLength(1);
      const server = servers[0]!;
      expect(trace.filter((s) => s.parentSpanId === '')).toEqual([server]);
      expect(server.name).toBe(`POST ${META_WEBHOOK_PATH}`);
      expect(server.attributes).toMatchObject({
        'http.request.method': 'POST',
        'http.route': META_WEBHOOK_PATH,
        'url.path': META_WEBHOOK_PATH,
        'http.response.status_code': 200,
      });
      // server -> wagate.ledger.record -> publish -> the worker's consume -> wagate.process.
      expect(ledger.parentSpanId).toBe(server.spanId);
      const publishes = trace.filter((s) => s.service === 'wagate-ingest' && s.kind === SPAN_KIND.producer);
      expect(publishes).toHaveLength(1);
      expect(publishes[0]!.parentSpanId).toBe(ledger.spanId);
      expect(publishes[0]!.attributes).toMatchObject({ 'messaging.system': 'rabbitmq', 'messaging.message.id': `whatsapp:${id}` });
      const consume = trace.find((s) => s.service === 'wagate-worker' && s.kind === SPAN_KIND.consumer)!;
      expect(consume.parentSpanId).toBe(publishes[0]!.spanId);
      expect(trace.find((s) => s.name === 'wagate.process')!.parentSpanId).toBe(consume.spanId);
      // The worker's provider call, in the same trace.
      expect(trace.some((s) => s.service === 'wagate-worker' && /^POST/.test(s.name))).toBe(true);
      expect(receiver.contentTypes().every((type) => type.startsWith(expectedType))).toBe(true);
    });

    it('continues the trace through a retry: one publish span per hand-over, the instrumentation adds none', async () => {
      pipeline.fake.behave({ kind: 'status', status: 503 }, 1);
      const id = uniqueWamid();
      expect((await postMetaText(children[0]!.baseUrl, { id, from: '15550500006', text: '1 coke' })).status).toBe(200);
      const trace = await waitFor('the retried message to be processed and its spans to arrive', () => {
        const inTrace = traceOfMessage(receiver.spans(), id);
        return inTrace.filter((s) => s.name === 'wagate.process').length === 2 ? inTrace : null;
      });
      // The ingest's publish, then the worker's hand-over to a retry tier: each one span, each
      // consumed by a span that is its child. The two processes export on their own schedules,
      // so the spans arrive in either order.
      const publishes = trace.filter((s) => s.kind === SPAN_KIND.producer);
      expect(publishes.map((s) => s.service).sort()).toEqual(['wagate-ingest', 'wagate-worker']);
      const ingestPublish = publishes.find((s) => s.service === 'wagate-ingest')!;
      const retryPublish = publishes.find((s) => s.service === 'wagate-worker')!;
      expect(retryPublish.parentSpanId).toBe(ingestPublish.spanId);
      const consumeParents = trace.filter((s) => s.kind === SPAN_KIND.consumer).map((s) => s.parentSpanId);
      expect(consumeParents.sort()).toEqual([ingestPublish.spanId, retryPublish.spanId].sort());
    });

    it('opens one server span for a path variant that express routes to the webhook (trailing slash)', async () => {
      const id = uniqueWamid();
      const reply = await postMeta(children[0]!.baseUrl, metaTextEnvelope({ id, from: '15550500003', text: 'hello' }), { path: `${META_WEBHOOK_PATH}/` });
      expect(reply.status).toBe(200);
      const trace = await waitFor('the ingest spans of the request', () => {
        const inTrace = traceOfMessage(receiver.spans(), id).filter((s) => s.service === 'wagate-ingest');
        return inTrace.some((s) => s.kind === SPAN_KIND.server) ? inTrace : null;
      });
      const servers = trace.filter((s) => s.kind === SPAN_KIND.server);
      expect(servers).toHaveLength(1);
      expect(servers[0]!.attributes).toMatchObject({ 'http.route': META_WEBHOOK_PATH, 'url.path': `${META_WEBHOOK_PATH}/` });
      // Nor did the HTTP instrumentation open one of its own (it would start a trace of its own).
      const otherServerSpans = receiver.spans().filter((s) => s.kind === SPAN_KIND.server && s.name !== `POST ${META_WEBHOOK_PATH}`);
      expect(otherServerSpans).toEqual([]);
    });

    it('opens a server span of its own for what express answers: the verification GET, the stats and an unknown path; none for probes', async () => {
      const base = children[0]!.baseUrl;
      const challenge = `${randomBytes(4).toString('hex')}`;
      const verification = await fetch(`${base}${META_WEBHOOK_PATH}?hub.mode=subscribe&hub.verify_token=${VERIFY_TOKEN}&hub.challenge=${challenge}`);
      expect(await verification.text()).toBe(challenge);
      expect((await fetch(`${base}${STATS_PATH}?source=whatsapp&hours=1`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } })).status).toBe(200);
      expect((await fetch(`${base}/no-such-path`)).status).toBe(404);
      expect((await fetch(`${base}/healthz`)).status).toBe(200);
      expect((await fetch(`${base}/Healthz/`)).status).toBe(200);
      const servers = () => receiver.spans().filter((s) => s.service === 'wagate-ingest' && s.kind === SPAN_KIND.server && !s.name.startsWith('POST'));
      await waitFor('the three server spans', () => servers().length >= 3);
      const byName = new Map(servers().map((s) => [s.name, s]));
      expect([...byName.keys()].sort()).toEqual(['GET', `GET ${META_WEBHOOK_PATH}`, `GET ${STATS_PATH}`].sort());
      expect(byName.get(`GET ${META_WEBHOOK_PATH}`)!.attributes).toMatchObject({ 'http.route': META_WEBHOOK_PATH, 'url.path': META_WEBHOOK_PATH, 'http.response.status_code': 200 });
      // The verify token is in the query string, which no span carries.
      expect(JSON.stringify(servers())).not.toContain(VERIFY_TOKEN);
      // A path nobody routes keeps the method alone: its path is the client's to make up.
      expect(byName.get('GET')!.attributes).toMatchObject({ 'http.response.status_code': 404 });
      expect(byName.get('GET')!.attributes['http.route']).toBeUndefined();
      // Express's instrumentation adds the handlers' spans beneath.
      const stats = byName.get(`GET ${STATS_PATH}`)!;
      await waitFor('a handler span under the stats server span', () => receiver.spans().some((s) => s.parentSpanId === stats.spanId));
    });
  });

  describe('with the sampler off for new traces (parentbased_always_off)', () => {
    let receiver: OtlpReceiver;
    let ingest: ChildIngest;
    /** Trusts no proxy's traceparent, and propagates b3 headers too. */
    let untrusting: ChildIngest;
    /** Trusts loopback's b3 headers. */
    let meshed: ChildIngest;
    let probe: QueueProbe;
    const queued: GetMessage[] = [];
    const queuedMessage = (id: string) =>
      waitFor(`${id} in its work queue`, async () => {
        queued.push(...(await probe.drainWork(pipeline.ingest.topology)));
        return queued.find((message) => message.properties.messageId === `whatsapp:${id}`) ?? null;
      });

    beforeAll(async () => {
      receiver = await startOtlpReceiver();
      probe = await openQueueProbe();
      // The collector's key, from a file as a mounted Secret gives it.
      const headersFile = path.join(mkdtempSync(path.join(os.tmpdir(), 'wagate-otlp-')), 'headers');
      // One header per line, as a Secret's value often holds several.
      writeFileSync(headersFile, 'authorization=Bearer collector-key\nx-scope-orgid=shop\n');
      // No worker: the test reads the queued messages themselves.
      // The test's requests come from loopback: as from a tracing ingress the ingest trusts.
      ingest = await spawnWagate('ingest', exportingTo(pipeline, receiver, {
        OTEL_EXPORTER_OTLP_HEADERS_FILE: headersFile, OTEL_TRACES_SAMPLER: 'parentbased_always_off', TRACE_TRUSTED_PROXIES: 'loopback',
      }));
      // Trusted for X-Forwarded-For (the admin rate limit), not for traces: an ingress that forwards passes a client's header on.
      untrusting = await spawnWagate('ingest', exportingTo(pipeline, receiver, {
        OTEL_EXPORTER_OTLP_HEADERS_FILE: headersFile, OTEL_TRACES_SAMPLER: 'parentbased_always_off', OTEL_PROPAGATORS: 'b3multi', TRUSTED_PROXIES: 'loopback',
      }));
      // Behind a Zipkin mesh's sidecar, which it trusts: the sidecar's context comes in b3 headers.
      meshed = await spawnWagate('ingest', exportingTo(pipeline, receiver, {
        OTEL_EXPORTER_OTLP_HEADERS_FILE: headersFile, OTEL_TRACES_SAMPLER: 'parentbased_always_off', OTEL_PROPAGATORS: 'b3multi', TRACE_TRUSTED_PROXIES: 'loopback',
      }));
    });

    afterAll(async () => {
      await meshed.stop();
      await untrusting.stop();
      await ingest.stop();
      await probe.close();
      await receiver.close();
    });

    it('exports nothing for an unsampled webhook and queues it with an unsampled traceparent', async () => {
      const unsampled = uniqueWamid();
      expect((await postMetaText(ingest.baseUrl, { id: unsampled, from: '15550500004', text: '1 coke' })).status).toBe(200);
      expect(String((await queuedMessage(unsampled)).properties.headers?.traceparent)).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-00$/);

      // A caller that sampled its own trace: its spans show that exports happen, and they end
      // after anything the earlier, unsampled request could have produced.
      const callerTraceId = randomBytes(16).toString('hex');
      const callerSpanId = randomBytes(8).toString('hex');
      const sampled = uniqueWamid();
      const reply = await postMeta(ingest.baseUrl, metaTextEnvelope({ id: sampled, from: '15550500005', text: '1 coke' }), {
        headers: { traceparent: `00-${callerTraceId}-${callerSpanId}-01` },
      });
      expect(reply.status).toBe(200);
      const sampledMessage = await queuedMessage(sampled);
      const spans = await waitFor("the sampled caller's spans", () => {
        const all = receiver.spans();
        return [SPAN_KIND.server, SPAN_KIND.producer].every((kind) => all.some((s) => s.kind === kind)) ? all : null;
      });

      // Every exported span belongs to the sampled caller's trace: none to the unsampled request.
      expect(spans.filter((s) => s.traceId !== callerTraceId)).toEqual([]);
      const server = spans.find((s) => s.kind === SPAN_KIND.server)!;
      const ledger = spans.find((s) => s.name === 'wagate.ledger.record')!;
      const publish = spans.find((s) => s.kind === SPAN_KIND.producer)!;
      expect([server.parentSpanId, ledger.parentSpanId, publish.parentSpanId]).toEqual([callerSpanId, server.spanId, ledger.spanId]);
      expect(spans).toHaveLength(3);
      // The queued message carries the publish span's context, for the worker's spans to join.
      expect(sampledMessage.properties.headers?.traceparent).toBe(`00-${callerTraceId}-${publish.spanId}-01`);
      // Every export carried the key read from OTEL_EXPORTER_OTLP_HEADERS_FILE.
      expect(receiver.requestHeaders().map((headers) => [headers.authorization, headers['x-scope-orgid']]))
        .toEqual(receiver.requestHeaders().map(() => ['Bearer collector-key', 'shop']));
      expect(receiver.requestHeaders().length).toBeGreaterThan(0);
    });

    it("does not let a caller's sampled traceparent force a trace, or choose its id, before the signature is checked", async () => {
      const callerTraceId = randomBytes(16).toString('hex');
      const traceparent = `00-${callerTraceId}-${randomBytes(8).toString('hex')}-01`;
      const id = uniqueWamid();
      expect((await postMeta(untrusting.baseUrl, metaTextEnvelope({ id, from: '15550500012', text: '1 coke' }), { headers: { traceparent } })).status).toBe(200);
      const message = await queuedMessage(id);
      // A trace of its own, which the sampler (off for new traces) did not sample.
      const own = String(message.properties.headers?.traceparent);
      expect(own).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-00$/);
      expect(own).not.toContain(callerTraceId);
      // The same unsampled context in the configured b3 headers, which the worker's consume span reads.
      expect(message.properties.headers).toMatchObject({ 'x-b3-traceid': own.split('-')[1], 'x-b3-spanid': own.split('-')[2], 'x-b3-sampled': '0' });
      // Forged, the same: no span, whatever the caller's flag says.
      const forged = await postMeta(untrusting.baseUrl, metaTextEnvelope({ id: uniqueWamid(), from: '15550500013', text: '1 coke' }), { headers: { traceparent }, secret: 'not-the-app-secret' });
      expect(forged.status).toBe(401);
      expect(receiver.spans().filter((span) => span.traceId === callerTraceId)).toEqual([]);
    });

    it('continues the trace of a trusted mesh that sends its context in b3 headers only', async () => {
      const meshTraceId = randomBytes(16).toString('hex');
      const meshSpanId = randomBytes(8).toString('hex');
      const headers = { 'x-b3-traceid': meshTraceId, 'x-b3-spanid': meshSpanId, 'x-b3-sampled': '1' };
      expect((await postMeta(meshed.baseUrl, metaTextEnvelope({ id: uniqueWamid(), from: '15550500014', text: '1 coke' }), { headers })).status).toBe(200);
      const server = await waitFor("the mesh's server span", () => receiver.spans().find((span) => span.traceId === meshTraceId && span.kind === SPAN_KIND.server) ?? null);
      expect(server.parentSpanId).toBe(meshSpanId);
    });
  });

  describe('with every trace sampled (always_on)', () => {
    let receiver: OtlpReceiver;
    let ingest: ChildIngest;

    beforeAll(async () => {
      receiver = await startOtlpReceiver();
      ingest = await spawnWagate('ingest', exportingTo(pipeline, receiver, { OTEL_TRACES_SAMPLER: 'always_on', TRACE_TRUSTED_PROXIES: 'loopback' }));
    });

    afterAll(async () => {
      await ingest.stop();
      await receiver.close();
    });

    // A sampler that ignores the parent would otherwise export a trace for each rehearsal
    // request, its publish marked failed, since the broker returns it by design.
    it('leaves the warm-up rehearsal out of the traces whatever the sampler', async () => {
      const warmedUp = ingest.logs.find((entry) => String(entry.msg).startsWith('ingest warmed up'));
      expect(warmedUp?.rehearsed).toBeGreaterThan(0);
      // In a trace of the test's own, so that its spans are known without its publish span: on
      // a busy machine a commit that answers late leaves the publish to another process's sweep.
      const traceId = randomBytes(16).toString('hex');
      const reply = await postMeta(ingest.baseUrl, metaTextEnvelope({ id: uniqueWamid(), from: '15550500010', text: '1 coke' }), {
        headers: { traceparent: `00-${traceId}-${randomBytes(8).toString('hex')}-01` },
      });
      expect(reply.status).toBe(200);
      await waitFor('its server and ledger spans', () => {
        const inTrace = receiver.spans().filter((s) => s.traceId === traceId);
        return inTrace.some((s) => s.kind === SPAN_KIND.server) && inTrace.some((s) => s.name === 'wagate.ledger.record');
      });
      // Spans leave in export order, so the rehearsal's would have arrived before this one's.
      expect(receiver.spans().filter((s) => s.traceId !== traceId)).toEqual([]);
    });
  });
});

/** The pipeline's settings for a process that exports its spans to `receiver` (OTLP over JSON unless `extra` says otherwise), at once. */
function exportingTo(pipeline: Pipeline, receiver: OtlpReceiver, extra: Record<string, string>): Record<string, string> {
  return { ...pipeline.env, OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url, OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json', OTEL_BSP_SCHEDULE_DELAY: '100', ...extra };
}

/** The spans of the trace that published this Meta message (found by the publish span's message id). */
function traceOfMessage(spans: ReceivedSpan[], wamid: string): ReceivedSpan[] {
  const publish = spans.find((s) => s.kind === SPAN_KIND.producer && s.attributes['messaging.message.id'] === `whatsapp:${wamid}`);
  return publish ? spans.filter((s) => s.traceId === publish.traceId) : [];
}
