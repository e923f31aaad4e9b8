import http from 'node:http';

/**
 * With BENCH_TRACING=1 the ingest exports every span over OTLP/HTTP to this sink, which
 * accepts and discards them, so the bench shows what tracing costs when it is on.
 */
export async function startOtlpSinkIfAsked(): Promise<(() => Promise<void>) | null> {
  if (process.env.BENCH_TRACING !== '1') return null;
  let exports = 0;
  const server = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      exports += 1;
      res.writeHead(200, { 'Content-Type': 'application/x-protobuf' }).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  // Children inherit the bench's environment, so the ingest starts its OTel SDK.
  process.env.OTEL_EXPORTER_OTLP_ENDPOINT = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  process.env.OTEL_EXPORTER_OTLP_PROTOCOL = 'http/protobuf';
  return () =>
    new Promise((resolve) => {
      process.stderr.write(`bench: the OTLP sink received ${exports} export request(s)\n`);
      server.close(() => resolve());
    });
}
