import protobuf from 'protobufjs';

/**
 * The fields of OTLP's ExportTraceServiceRequest (opentelemetry-proto, trace/v1) that the
 * tests read, with their published field numbers; protobuf skips every field not listed.
 */
const root = protobuf.Root.fromJSON({
  nested: {
    AnyValue: { fields: { stringValue: { type: 'string', id: 1 }, boolValue: { type: 'bool', id: 2 }, intValue: { type: 'int64', id: 3 }, doubleValue: { type: 'double', id: 4 } } },
    KeyValue: { fields: { key: { type: 'string', id: 1 }, value: { type: 'AnyValue', id: 2 } } },
    Resource: { fields: { attributes: { rule: 'repeated', type: 'KeyValue', id: 1 } } },
    Span: {
      fields: {
        traceId: { type: 'bytes', id: 1 },
        spanId: { type: 'bytes', id: 2 },
        parentSpanId: { type: 'bytes', id: 4 },
        name: { type: 'string', id: 5 },
        kind: { type: 'int32', id: 6 },
        attributes: { rule: 'repeated', type: 'KeyValue', id: 9 },
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

interface KeyValue {
  key: string;
  value?: { stringValue?: string; boolValue?: boolean; intValue?: unknown; doubleValue?: number };
}

interface Decoded {
  resourceSpans?: {
    resource?: { attributes?: KeyValue[] };
    scopeSpans?: { spans?: { traceId: Uint8Array; spanId: Uint8Array; parentSpanId?: Uint8Array; name: string; kind?: number; attributes?: KeyValue[] }[] }[];
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
          kind: span.kind ?? 0,
          attributes: (span.attributes ?? []).map(({ key, value }) => ({ key, value: jsonValue(value) })),
        })),
      })),
    })),
  };
}

/**
 * An AnyValue as OTLP/JSON writes it: only the field that is set (a decoded message shows
 * unset fields' defaults through its prototype), int64 as a decimal string.
 */
function jsonValue(value: KeyValue['value']): Record<string, unknown> {
  const own = Object.fromEntries(Object.entries(value ?? {}));
  return 'intValue' in own ? { intValue: String(own.intValue) } : own;
}
