import net from 'node:net';
import { startPipeline, type Pipeline } from '../support/pipeline';

/**
 * The metrics port is the worker's and the autoscaler's only server, and their probes answer on
 * it. It keeps the header timeout of the public port: with Node's default (a minute), a client
 * that sends its headers a byte at a time, or never ends them, held each socket that long.
 */
const HEADERS_TIMEOUT_MS = '500';

let pipeline: Pipeline;

beforeAll(async () => {
  pipeline = await startPipeline({ HTTP_HEADERS_TIMEOUT_MS: HEADERS_TIMEOUT_MS });
});

afterAll(async () => {
  await pipeline.stop();
});

/** Opens a connection, sends headers that never end, and resolves with what the server said once it closed it. */
function unfinishedHeaders(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    let answer = '';
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => (answer += chunk));
    socket.on('error', reject);
    socket.on('close', () => resolve(answer));
    socket.write('GET /readyz HTTP/1.1\r\nHost: wagate.test\r\nX-Slow: ');
  });
}

it('answers headers that never end with 408 and closes, on the ingest\'s metrics port and the worker\'s', async () => {
  const worker = await pipeline.startWorker();
  for (const port of [pipeline.ingest.metricsPort, worker.metricsPort]) {
    // Well within the jest timeout, while Node's own default would hold the socket for 60 s.
    expect(await unfinishedHeaders(port)).toMatch(/^HTTP\/1\.1 408/);
  }
}, 20_000);
