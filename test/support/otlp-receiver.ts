import http from 'node:http';
import { decodeTraceExport } from './otlp-protobuf';

export interface ReceivedSpan {
  service: string;
  traceId: string;
  spanId: string;
  parentSpanId: string;
  name: string;
  /** OTLP's SpanKind: 1 internal, 2 server, 3 client, 4 producer, 5 consumer. */
  kind: number;
  /** Scalar attributes by key; integers as numbers. */
  attributes: Record<string, string | number | boolean>;
}

export interface OtlpReceiver {
  url: string;
  spans(): ReceivedSpan[];
  /** Content types of every export request, e.g. application/json or application/x-protobuf. */
  contentTypes(): string[];
  /** The headers of every export request. */
  requestHeaders(): http.IncomingHttpHeaders[];
  close(): Promise<void>;
}

/** A local OTLP/HTTP trace receiver: decodes JSON and protobuf exports alike. */
export async function startOtlpReceiver(): Promise<OtlpReceiver> {
  const spans: ReceivedSpan[] = [];
  const contentTypes: string[] = [];
  const requestHeaders: http.IncomingHttpHeaders[] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const type = req.headers['content-type'] ?? '';
      contentTypes.push(type);
      requestHeaders.push(req.headers);
      const body = Buffer.concat(chunks);
      if (req.url === '/v1/traces' && type.startsWith('application/json')) collect(JSON.parse(body.toString('utf8')));
      if (req.url === '/v1/traces' && type.startsWith('application/x-protobuf')) collect(decodeTraceExport(body));
      res.writeHead(200, { 'Content-Type': type.startsWith('application/json') ? 'application/json' : 'application/x-protobuf' }).end(
        type.startsWith('application/json') ? '{}' : undefined,
      );
    });
  });
  function collect(body: { resourceSpans?: any[] }): void {
    for (const resourceSpans of body.resourceSpans ?? []) {
      const service = (resourceSpans.resource?.attributes ?? []).find((a: any) => a.key === 'service.name')?.value?.stringValue ?? '';
      for (const scope of resourceSpans.scopeSpans ?? []) {
        for (const span of scope.spans ?? []) {
          spans.push({
            service,
            traceId: span.traceId,
            spanId: span.spanId,
            parentSpanId: span.parentSpanId ?? '',
            name: span.name,
            kind: Number(span.kind ?? 0),
            attributes: Object.fromEntries((span.attributes ?? []).map((a: any) => [a.key, scalarOf(a.value)])),
          });
        }
      }
    }
  }
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as { port: number }).port}`,
    spans: () => [...spans],
    contentTypes: () => [...contentTypes],
    requestHeaders: () => [...requestHeaders],
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

/** OTLP's AnyValue as a plain value (the tests read scalars only). */
function scalarOf(value: any): string | number | boolean {
  if (value?.intValue !== undefined) return Number(value.intValue);
  if (value?.doubleValue !== undefined) return Number(value.doubleValue);
  if (value?.boolValue !== undefined) return Boolean(value.boolValue);
  return value?.stringValue ?? '';
}
