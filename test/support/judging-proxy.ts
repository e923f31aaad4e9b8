import net from 'node:net';

/**
 * What happens to a chunk: passed on, dropped with its connection reset both ways, or held
 * (with every chunk after it that way) until the proxy releases what it holds.
 */
export type Verdict = 'pass' | 'reset' | 'hold';

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
  /** Chunks held so far, on every connection. */
  held(): number;
  /** Passes on what is held, in order, and lets later chunks through as the judge says. */
  release(): void;
  close(): Promise<void>;
}

/**
 * A TCP proxy that shows every chunk, each way, to a judge, who may reset the connection
 * instead of passing it on, or hold it back: a connection lost, or an answer late, at one
 * exact step of a protocol, where the plain proxy (tcp-proxy.ts) can only cut everything at a
 * moment.
 */
export async function startJudgingProxy(target: URL, defaultPort: number, judge: ChunkJudge): Promise<JudgingProxy> {
  let resets = 0;
  let heldCount = 0;
  const releases: (() => void)[] = [];
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
    const relay = (to: net.Socket, verdictOf: (chunk: Buffer) => Verdict) => {
      const held: Buffer[] = [];
      releases.push(() => {
        for (const chunk of held.splice(0)) to.write(chunk);
      });
      return (chunk: Buffer) => {
        const verdict = verdictOf(chunk);
        if (verdict === 'reset') return reset();
        // Behind a held chunk, every chunk waits: the protocol's order stays whole.
        if (verdict === 'hold' || held.length > 0) {
          heldCount += 1;
          return void held.push(chunk);
        }
        to.write(chunk);
      };
    };
    client.on('data', relay(upstream, (chunk) => judge.fromClient?.(chunk, notes) ?? 'pass'));
    upstream.on('data', relay(client, (chunk) => judge.fromServer?.(chunk, notes) ?? 'pass'));
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    resets: () => resets,
    held: () => heldCount,
    release: () => releases.forEach((release) => release()),
    async close() {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
