import { readdirSync, readFileSync } from 'node:fs';
import net from 'node:net';
import { gzipSync } from 'node:zlib';
import { META_WEBHOOK_PATH } from '../src/webhooks/meta';

/**
 * Abusive clients for the slow-client tests and the bench's hostile part, on loopback only,
 * each bounded in connections and stopped by its caller. Each returns what it saw, so the
 * caller can say the server answered the attack itself correctly too.
 */
export interface Attack {
  /** Closes every socket the attack opened. */
  stop(): Promise<void>;
  /** Status lines the server sent back to the attacker, counted by code. */
  answers: Map<number, number>;
}

const DRIP_INTERVAL_MS = 100;

function openSocket(port: number, answers: Map<number, number>): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: '127.0.0.1', port }, () => resolve(socket));
    socket.once('error', reject);
    socket.on('data', (chunk: Buffer) => {
      for (const match of chunk.toString('latin1').matchAll(/HTTP\/1\.1 (\d{3})/g)) {
        const code = Number(match[1]);
        answers.set(code, (answers.get(code) ?? 0) + 1);
      }
    });
    // The server cutting an attacker off is the expected end, not a failure.
    socket.on('error', () => undefined);
  });
}

async function openMany(port: number, count: number, answers: Map<number, number>): Promise<net.Socket[]> {
  const sockets: net.Socket[] = [];
  const BATCH = 100;
  for (let opened = 0; opened < count; opened += BATCH) {
    sockets.push(...(await Promise.all(Array.from({ length: Math.min(BATCH, count - opened) }, () => openSocket(port, answers)))));
  }
  return sockets;
}

/** An attack that writes to its open sockets every DRIP_INTERVAL_MS; `drips` counts those rounds. */
export interface DripAttack extends Attack {
  drips(): number;
}

function dripAttack(sockets: net.Socket[], nextBytes: (socket: net.Socket, tick: number) => string | null, answers: Map<number, number>): DripAttack {
  let tick = 0;
  const timer = setInterval(() => {
    tick += 1;
    for (const socket of sockets) {
      const bytes = nextBytes(socket, tick);
      if (bytes !== null && !socket.destroyed) socket.write(bytes);
    }
  }, DRIP_INTERVAL_MS);
  return {
    answers,
    drips: () => tick,
    async stop() {
      clearInterval(timer);
      for (const socket of sockets) socket.destroy();
    },
  };
}

/** Slowloris: connections that send their request headers one byte at a time and never finish. */
export async function slowloris(port: number, connections: number): Promise<DripAttack> {
  const answers = new Map<number, number>();
  const sockets = await openMany(port, connections, answers);
  const headers = `POST ${META_WEBHOOK_PATH} HTTP/1.1\r\nHost: 127.0.0.1\r\n` + 'X-Padding: a\r\n'.repeat(1000);
  // Ticks count from 1; the first drip must be the first byte, or the request line is malformed and answered 400 at once.
  return dripAttack(sockets, (_socket, tick) => headers[tick - 1] ?? null, answers);
}

/** A slow body: complete headers announcing a body that arrives a byte at a time. */
export async function slowBody(port: number, connections: number, declaredBytes: number): Promise<DripAttack> {
  const answers = new Map<number, number>();
  const sockets = await openMany(port, connections, answers);
  for (const socket of sockets) {
    socket.write(`POST ${META_WEBHOOK_PATH} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: ${declaredBytes}\r\n\r\n`);
  }
  return dripAttack(sockets, () => '{', answers);
}

/** Requests whose headers are far over the server's limit, sent over and over. */
export async function oversizedHeaders(port: number, connections: number, headerBytes: number): Promise<Attack> {
  return repeatedRequests(port, connections, `GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: ${'a'.repeat(headerBytes)}\r\n\r\n`);
}

/** Many requests written back to back on each connection without waiting for answers. */
export async function pipeliningFlood(port: number, connections: number, requestsPerWrite: number): Promise<Attack> {
  const one = `POST ${META_WEBHOOK_PATH} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}`;
  return repeatedRequests(port, connections, one.repeat(requestsPerWrite));
}

/** A small gzip body that would inflate to `inflatedBytes`, announced as Content-Encoding: gzip. */
export async function compressedBomb(port: number, connections: number, inflatedBytes: number): Promise<Attack> {
  const bomb = gzipSync(Buffer.alloc(inflatedBytes));
  const head = `POST ${META_WEBHOOK_PATH} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Encoding: gzip\r\nContent-Length: ${bomb.length}\r\n\r\n`;
  return repeatedRequests(port, connections, Buffer.concat([Buffer.from(head), bomb]));
}

/** Each connection sends `request`, and again on a new connection whenever the server closes it. */
async function repeatedRequests(port: number, connections: number, request: string | Buffer): Promise<Attack> {
  const answers = new Map<number, number>();
  let stopped = false;
  const live = new Set<net.Socket>();
  const keepSending = async (): Promise<void> => {
    while (!stopped) {
      const socket = await openSocket(port, answers).catch(() => null);
      if (!socket) continue;
      live.add(socket);
      const closed = new Promise((resolve) => socket.once('close', resolve));
      // Written again only once the last copy has left, so the flood is bounded by what the server takes.
      const resend = setInterval(() => !socket.destroyed && socket.writableLength === 0 && socket.write(request), DRIP_INTERVAL_MS);
      socket.write(request);
      await closed;
      clearInterval(resend);
      live.delete(socket);
    }
  };
  const loops = Array.from({ length: connections }, () => keepSending());
  return {
    answers,
    async stop() {
      stopped = true;
      for (const socket of live) socket.destroy();
      await Promise.all(loops);
    },
  };
}

export interface AttackSpec {
  name: string;
  /** Attacking connections at scale 1. */
  connections: number;
  start(port: number, connections: number): Promise<Attack>;
}

const KIB = 1024;

/**
 * Every attack at the size test/hostile/slow-clients.test.ts uses at HOSTILE_SCALE=1, which is
 * also what the bench measures genuine latency under, so both speak of the same attacks.
 */
export const ATTACKS = {
  slowloris: { name: 'slowloris', connections: 1000, start: (port, connections) => slowloris(port, connections) },
  slowBody: { name: 'slow body', connections: 200, start: (port, connections) => slowBody(port, connections, 64 * KIB) },
  oversizedHeaders: { name: 'oversized headers', connections: 20, start: (port, connections) => oversizedHeaders(port, connections, 64 * KIB) },
  pipeliningFlood: { name: 'pipelining flood', connections: 4, start: (port, connections) => pipeliningFlood(port, connections, 50) },
  compressedBomb: { name: 'compressed body bomb', connections: 10, start: (port, connections) => compressedBomb(port, connections, 64 * KIB * KIB) },
} satisfies Record<string, AttackSpec>;

export type AttackName = keyof typeof ATTACKS;

export interface ProcessUsage {
  fds: number;
  rssBytes: number;
}

/** Open file descriptors and resident memory of a process, from /proc. */
export function processUsage(pid: number): ProcessUsage {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const rssKb = Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1] ?? 0);
  return { fds: readdirSync(`/proc/${pid}/fd`).length, rssBytes: rssKb * 1024 };
}
