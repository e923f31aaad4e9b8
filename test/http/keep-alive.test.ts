import net from 'node:net';
import type http from 'node:http';
import { once } from 'node:events';
import { loadConfig } from '../../src/config';
import { boundPort, closeServerNow, listen } from '../../src/server/http-server';

const HEADERS_TIMEOUT_MS = 1000;
const KEEP_ALIVE_TIMEOUT_MS = 4000;
/** Longer than the headers timeout, well inside the keep-alive timeout: a load balancer reusing a pooled connection. */
const IDLE_BEFORE_REUSE_MS = 1500;

/** A raw keep-alive connection, so the test sees exactly when the server closes it. */
class Connection {
  private readonly socket: net.Socket;
  private buffer = '';
  readonly closedAt: Promise<number>;

  constructor(port: number) {
    this.socket = net.connect(port, '127.0.0.1');
    this.socket.setEncoding('utf8');
    this.socket.on('data', (chunk: string) => (this.buffer += chunk));
    this.closedAt = once(this.socket, 'end').then(() => performance.now());
  }

  /** Sends one GET and resolves with the response head once the whole response has arrived. */
  async get(path: string): Promise<{ head: string; answeredAt: number }> {
    this.buffer = '';
    this.socket.write(`GET ${path} HTTP/1.1\r\nHost: wagate.test\r\nConnection: keep-alive\r\n\r\n`);
    while (!/\r\n\r\n[\s\S]*ok$/.test(this.buffer)) await once(this.socket, 'data');
    return { head: this.buffer.split('\r\n\r\n')[0]!, answeredAt: performance.now() };
  }

  destroy(): void {
    this.socket.destroy();
  }
}

describe('idle keep-alive connections', () => {
  let server: http.Server;
  let connection: Connection;

  beforeEach(async () => {
    server = await listen((_req, res) => res.end('ok'), 0, '127.0.0.1', {
      headersTimeoutMs: HEADERS_TIMEOUT_MS,
      requestTimeoutMs: 30000,
      keepAliveTimeoutMs: KEEP_ALIVE_TIMEOUT_MS,
    });
    connection = new Connection(boundPort(server));
  });

  afterEach(async () => {
    connection.destroy();
    await closeServerNow(server);
  });

  it('stay open for the keep-alive timeout, which the server announces, and are reused within it', async () => {
    const first = await connection.get('/first');
    expect(first.head).toMatch(/^HTTP\/1\.1 200/);
    expect(first.head).toMatch(new RegExp(`\r\nKeep-Alive: timeout=${KEEP_ALIVE_TIMEOUT_MS / 1000}\r\n`, 'i'));

    await new Promise((resolve) => setTimeout(resolve, IDLE_BEFORE_REUSE_MS));
    // Idle longer than the headers timeout: the same connection still answers.
    const reused = await connection.get('/reused');
    expect(reused.head).toMatch(/^HTTP\/1\.1 200/);

    // The server closes it only once the keep-alive timeout has passed since the last answer.
    const closedAt = await connection.closedAt;
    expect(closedAt - reused.answeredAt).toBeGreaterThanOrEqual(KEEP_ALIVE_TIMEOUT_MS);
  });
});

describe('the keep-alive default', () => {
  it('outlasts the 60 s idle timeout of common load balancers and ingress proxies, so they close first', () => {
    expect(loadConfig({}).HTTP_KEEP_ALIVE_TIMEOUT_MS).toBeGreaterThan(60000);
  });
});
