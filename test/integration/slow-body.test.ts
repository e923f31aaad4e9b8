import net from 'node:net';
import { META_WEBHOOK_PATH } from '../../src/webhooks/meta';
import { useIngestSuite } from '../support/ingest';
import { postMetaText, uniqueWamid } from '../support/webhooks';

/**
 * A request holds one of MAX_IN_FLIGHT's slots while its body arrives, before its signature can
 * be checked. A body that dribbles in gives the slot back after WEBHOOK_BODY_TIMEOUT_MS with a
 * 408, not after the whole HTTP_REQUEST_TIMEOUT_MS: with one slot here, a stalled upload would
 * otherwise keep every genuine webhook out (503) for 30 s.
 */
const suite = useIngestSuite({ MAX_IN_FLIGHT: '1', WEBHOOK_BODY_TIMEOUT_MS: '500' });

/** Declares a body of 100 bytes, sends 10 of them, and stalls; resolves with what the server answered once it closes. */
async function stalledUpload(): Promise<{ socket: net.Socket; answer: Promise<string> }> {
  const { port } = new URL(suite.ingest.baseUrl);
  const socket = net.connect(Number(port), '127.0.0.1');
  await new Promise((resolve) => socket.once('connect', resolve));
  socket.on('error', () => undefined);
  const chunks: Buffer[] = [];
  socket.on('data', (chunk: Buffer) => chunks.push(chunk));
  const answer = new Promise<string>((resolve) => socket.once('close', () => resolve(Buffer.concat(chunks).toString('latin1'))));
  socket.write(`POST ${META_WEBHOOK_PATH} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n`);
  socket.write(Buffer.alloc(10, 0x20));
  return { socket, answer };
}

it('answers a body that has not arrived within WEBHOOK_BODY_TIMEOUT_MS 408, closes its connection and gives its slot back', async () => {
  const stalled = await stalledUpload();
  const answer = await stalled.answer;
  expect(answer).toMatch(/^HTTP\/1\.1 408 /);
  expect(answer).toMatch(/\r\nconnection: close\r\n/i);
  expect(answer.endsWith('request body not received in time')).toBe(true);
  // The one slot is free again.
  expect((await postMetaText(suite.ingest.baseUrl, { id: uniqueWamid(), text: '1 coke' })).status).toBe(200);
  const metrics = await (await fetch(suite.ingest.metricsUrl)).text();
  expect(metrics).toMatch(/wagate_webhook_events_total\{source="whatsapp",outcome="bad_request"[^}]*\} 1\n/);
});
