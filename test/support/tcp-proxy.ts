import net from 'node:net';

export type ProxyMode = 'forward' | 'refuse' | 'blackhole';

export interface TcpProxy {
  port: number;
  /** forward: pass bytes; refuse: reset every connection; blackhole: accept and say nothing. */
  setMode(mode: ProxyMode): void;
  /** Connections reset on arrival so far, in refuse mode: each is one attempt of a client to reach the server. */
  refused(): number;
  close(): Promise<void>;
}

/**
 * A TCP proxy in front of a shared service, so a test can play an outage for its own
 * connections without stopping the Postgres or RabbitMQ that other test files use.
 */
export async function startTcpProxy(targetPort: number, targetHost = '127.0.0.1'): Promise<TcpProxy> {
  let mode: ProxyMode = 'forward';
  let refused = 0;
  const sockets = new Set<net.Socket>();
  const pairs = new Set<[net.Socket, net.Socket]>();
  const track = (socket: net.Socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => socket.destroy());
  };
  const server = net.createServer((client) => {
    track(client);
    // A reset, as a refused or crashed server gives. A clean close right after accept is not
    // the same: postgres.js takes it for a connection still being set up and retries it
    // without end, so a query would hang instead of failing as it does against a dead server.
    if (mode === 'refuse') {
      refused += 1;
      return client.resetAndDestroy();
    }
    if (mode === 'blackhole') return;
    const upstream = net.connect(targetPort, targetHost);
    track(upstream);
    client.pipe(upstream).pipe(client);
    const pair: [net.Socket, net.Socket] = [client, upstream];
    pairs.add(pair);
    client.on('close', () => {
      pairs.delete(pair);
      upstream.destroy();
    });
    upstream.on('close', () => client.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    refused: () => refused,
    setMode(next) {
      // Piping a pair again that already flows would send every byte twice.
      if (next === mode) return;
      const leaving = mode;
      mode = next;
      if (next === 'forward' && leaving === 'blackhole') {
        for (const [client, upstream] of pairs) {
          client.pipe(upstream);
          upstream.pipe(client);
          client.resume();
          upstream.resume();
        }
      }
      if (next === 'refuse') for (const socket of sockets) socket.destroy();
      // A hung peer: open connections stay open but nothing gets through any more.
      if (next === 'blackhole') {
        for (const [client, upstream] of pairs) {
          client.unpipe(upstream);
          upstream.unpipe(client);
          client.pause();
          upstream.pause();
        }
      }
    },
    async close() {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** A proxy in front of the server a test URL names (TEST_DATABASE_URL, TEST_AMQP_URL), and that URL through it. */
export async function startProxyFor(url: string, defaultPort: number): Promise<{ proxy: TcpProxy; url: string }> {
  const target = new URL(url);
  const proxy = await startTcpProxy(Number(target.port || defaultPort), target.hostname || '127.0.0.1');
  const through = new URL(url);
  through.hostname = '127.0.0.1';
  through.port = String(proxy.port);
  return { proxy, url: through.toString() };
}
