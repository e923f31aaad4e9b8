import net from 'node:net';

/** What happens to a chunk: passed on, or dropped with its connection reset both ways. */
export type Verdict = 'pass' | 'reset';

/** A judge's notes on one proxied connection, kept from one chunk to the next. */
export type ConnectionNotes = Set<string>;

export interface ChunkJudge {
  /** A chunk the client sent, before it reaches the server. */
  fromClient?(chunk: Buffer, notes: ConnectionNotes): Verdict;
  /** A chunk the server sent, before it reaches the client. */
  fromServer?(chunk: Buffer, notes: ConnectionNotes): Verdict;
}

export interface JudgingProxy {
  port: number;
  /** Connections reset on a verdict so far. */
  resets(): number;
  close(): Promise<void>;
}

/**
 * A TCP proxy that shows every chunk, each way, to a judge, who may reset the connection
 * instead of passing it on: a connection lost at one exact step of a protocol, where the
 * plain proxy (tcp-proxy.ts) can only cut everything at a moment.
 */
export async function startJudgingProxy(target: URL, defaultPort: number, judge: ChunkJudge): Promise<JudgingProxy> {
  let resets = 0;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const upstream = net.connect(Number(target.port || defaultPort), target.hostname);
    const notes: ConnectionNotes = new Set();
    for (const socket of [client, upstream]) {
      sockets.add(socket);
      socket.on('close', () => sockets.delete(socket));
      socket.on('error', () => socket.destroy());
    }
    const reset = () => {
      resets += 1;
      upstream.destroy();
      client.resetAndDestroy();
    };
    client.on('data', (chunk: Buffer) => ((judge.fromClient?.(chunk, notes) ?? 'pass') === 'pass' ? upstream.write(chunk) : reset()));
    upstream.on('data', (chunk: Buffer) => ((judge.fromServer?.(chunk, notes) ?? 'pass') === 'pass' ? client.write(chunk) : reset()));
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    resets: () => resets,
    async close() {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
