import net from 'node:net';
import { once } from 'node:events';
import { META_WEBHOOK_PATH } from '../../src/webhooks/meta';
import { metaSignature, metaTextEnvelope } from '../../src/webhooks/samples';
import { META_SECRET, useIngestSuite } from '../support/ingest';
import { uniqueWamid } from '../support/webhooks';

/**
 * A client that sends `Expect: 100-continue` waits to be told before it sends its body. Node
 * answered 100 for every such request before wagate had looked at it, so a webhook refused
 * without its body (announced too large, or the pod overloaded) was sent it all the same.
 */
const MAX_BODY_BYTES = 4096;
const suite = useIngestSuite({ MAX_BODY_BYTES: String(MAX_BODY_BYTES) });

/** The headers of a Meta webhook POST announcing `length` bytes, with the signature of `body` when given. */
function head(length: number, signature?: string): string {
  return `POST ${META_WEBHOOK_PATH} HTTP/1.1\r\nHost: wagate.test\r\nContent-Type: application/json\r\nContent-Length: ${length}\r\n` +
    `${signature ? `X-Hub-Signature-256: ${signature}\r\n` : ''}Expect: 100-continue\r\n\r\n`;
}

/** Everything the server has sent on the socket once `until` matches it. */
async function readUntil(socket: net.Socket, received: { text: string }, until: RegExp): Promise<string> {
  while (!until.test(received.text)) await once(socket, 'data');
  return received.text;
}

function connect(): { socket: net.Socket; received: { text: string } } {
  const socket = net.connect(Number(new URL(suite.ingest.baseUrl).port), '127.0.0.1');
  const received = { text: '' };
  socket.setEncoding('utf8');
  socket.on('data', (chunk: string) => (received.text += chunk));
  return { socket, received };
}

it('refuses a body announced too large with 413 and no 100, so the client never sends it', async () => {
  const { socket, received } = connect();
  try {
    socket.write(head(MAX_BODY_BYTES + 1));
    const answer = await readUntil(socket, received, /\r\n\r\n/);
    expect(answer).toMatch(/^HTTP\/1\.1 413 /);
    expect(answer).not.toContain('100 Continue');
  } finally {
    socket.destroy();
  }
});

it('tells a genuine webhook to go on, then acknowledges it once its body has arrived', async () => {
  const body = JSON.stringify(metaTextEnvelope({ id: uniqueWamid(), from: '15550940001', text: '1 coke' }));
  const { socket, received } = connect();
  try {
    socket.write(head(Buffer.byteLength(body), metaSignature(META_SECRET, body)));
    expect(await readUntil(socket, received, /\r\n\r\n/)).toBe('HTTP/1.1 100 Continue\r\n\r\n');
    socket.write(body);
    const answer = await readUntil(socket, received, /^HTTP\/1\.1 100 Continue\r\n\r\nHTTP\/1\.1 \d{3} [\s\S]*\r\n\r\n/);
    expect(answer.slice('HTTP/1.1 100 Continue\r\n\r\n'.length)).toMatch(/^HTTP\/1\.1 200 /);
  } finally {
    socket.destroy();
  }
});
