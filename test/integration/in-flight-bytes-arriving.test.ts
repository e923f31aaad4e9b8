import { useIngestSuite } from '../support/ingest';
import { waitFor } from '../support/wait';
import { postMeta, postMetaText, stalledUpload, uniqueWamid } from '../support/webhooks';
import { metaTextEnvelope } from '../../src/webhooks/samples';

/**
 * Bodies larger than the upfront reservation (64 KiB) are charged to MAX_IN_FLIGHT_BYTES as
 * their bytes arrive, not as declared: connections that declare megabytes and send nothing
 * cannot take the budget from genuine webhooks, and a body whose bytes do not fit is refused
 * 503 mid-read.
 */
const MIB = 1024 * 1024;
// Stalled uploads stay held for the test's length, however slow the machine: not cut at WEBHOOK_BODY_TIMEOUT_MS.
const suite = useIngestSuite({ MAX_BODY_BYTES: String(MIB), MAX_IN_FLIGHT_BYTES: String(MIB), WEBHOOK_BODY_TIMEOUT_MS: '120000' });

async function inFlightGauge(): Promise<number> {
  const text = await (await fetch(suite.ingest.metricsUrl)).text();
  return Number(/^wagate_http_in_flight_requests(?:\{[^}]*\})? (\d+)/m.exec(text)?.[1] ?? NaN);
}

const upload = (declared: number, sent: number, headers = '') => stalledUpload(suite.ingest.baseUrl, declared, sent, headers);

it('charges a large body as its bytes arrive: idle uploads declaring megabytes leave room for genuine webhooks', async () => {
  const idle = await Promise.all(Array.from({ length: 8 }, () => upload(MIB, 1)));
  await waitFor('the idle uploads to hold their slots', async () => (await inFlightGauge()) === 8);
  const id = uniqueWamid();
  expect((await postMetaText(suite.ingest.baseUrl, { id, text: '1 coke' })).status).toBe(200);
  for (const { socket } of idle) socket.destroy();
  await waitFor('the idle uploads to give their bytes back', async () => (await inFlightGauge()) === 0);
});

it('refuses a body 503 mid-read when its arriving bytes do not fit, closes its connection, and serves again after', async () => {
  const first = await upload(MIB, 600 * 1024);
  await waitFor('the first upload to hold its slot', async () => (await inFlightGauge()) === 1);
  const second = await upload(MIB, 600 * 1024);
  const refused = await second.answer;
  expect(refused).toMatch(/^HTTP\/1\.1 503 /);
  expect(refused).toMatch(/\r\nconnection: close\r\n/i);
  expect(refused.endsWith('\r\n\r\noverloaded')).toBe(true);

  first.socket.destroy();
  await waitFor('the bytes to be given back', async () => (await inFlightGauge()) === 0);
  expect((await postMetaText(suite.ingest.baseUrl, { id: uniqueWamid(), text: '1 coke' })).status).toBe(200);
});

it('gives back what a refused body reserved and closes its connection, however many of its bytes still come', async () => {
  // Refused 415 before its body is read; the client goes on sending it.
  const refused = await upload(MIB, 0, 'Content-Encoding: gzip\r\n');
  refused.socket.write(Buffer.alloc(900 * 1024, 0x20));
  const answer = await refused.answer;
  expect(answer).toMatch(/^HTTP\/1\.1 415 /);
  expect(answer).toMatch(/\r\nconnection: close\r\n/i);
  await waitFor('the refused upload to give its bytes back', async () => (await inFlightGauge()) === 0);

  // The whole budget is there again: a genuine body of 600 KiB fits.
  const id = uniqueWamid();
  const json = JSON.stringify(metaTextEnvelope({ id, from: '15550700002', text: '1 coke' }));
  const reply = await postMeta(suite.ingest.baseUrl, json + ' '.repeat(600 * 1024 - json.length));
  expect(reply.status).toBe(200);
});
