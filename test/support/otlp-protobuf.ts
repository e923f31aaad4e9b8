import protobuf from 'protobufjs';

/**
 * The fields of OTLP's ExportTraceServiceRequest (opentelemetry-proto, trace/v1) that the
 * tests read, with their published field numbers; protobuf skips every field not listed.
 */
const root = protobuf.Root.fromJSON({
  nested: {
    AnyValue: { fields: { stringValue: { type: 'string', id: 1 } } },
    KeyValue: { fields: { key: { type: 'string', id: 1 }, value: { type: 'AnyValue', id: 2 } } },
    Resource: { fields: { attributes: { rule: 'repeated', type: 'KeyValue', id: 1 } } },
    Span: {
      fields: {
        traceId: { type: 'bytes', id: 1 },
        spanId: { type: 'bytes', id: 2 },
        parentSpanId: { type: 'bytes', id: 4 },
        name: { type: 'string', id: 5 },
      },
    },
    ScopeSpans: { fields: { spans: { rule: 'repeated', type: 'Span', id: 2 } } },
    ResourceSpans: {
      fields: { resource: { type: 'Resource', id: 1 }, scopeSpans: { rule: 'repeated', type: 'ScopeSpans', id: 2 } },
    },
    ExportTraceServiceRequest: { fields: { resourceSpans: { rule: 'repeated', type: 'ResourceSpans', id: 1 } } },
  },
});
const request = root.lookupType('ExportTraceServiceRequest');

interface Decoded {
  resourceSpans?: {
    resource?: { attributes?: { key: string; value?: { stringValue?: string } }[] };
    scopeSpans?: { spans?: { traceId: Uint8Array; spanId: Uint8Array; parentSpanId?: Uint8Array; name: string }[] }[];
  }[];
}

const hex = (bytes: Uint8Array | undefined) => (bytes && bytes.length > 0 ? Buffer.from(bytes).toString('hex') : '');

/** The request in the shape OTLP/JSON carries it, ids as lower-case hex. */
export function decodeTraceExport(body: Buffer) {
  const decoded = request.decode(body) as unknown as Decoded;
  return {
    resourceSpans: (decoded.resourceSpans ?? []).map((resourceSpans) => ({
      resource: resourceSpans.resource,
      scopeSpans: (resourceSpans.scopeSpans ?? []).map((scope) => ({
        spans: (scope.spans ?? []).map((span) => ({
          traceId: hex(span.traceId),
          spanId: hex(span.spanId),
          parentSpanId: hex(span.parentSpanId),
          name: span.name,
        })),
      })),
    })),
  };
}
