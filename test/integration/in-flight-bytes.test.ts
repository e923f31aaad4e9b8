import { metaTextEnvelope } from '../../src/webhooks/samples';
import { useIngestSuite } from '../support/ingest';
import { waitFor } from '../support/wait';
import { postMeta, stalledUpload, uniqueWamid } from '../support/webhooks';

const MAX_BODY_BYTES = 64 * 1024;
// The stalled upload stays held for the test's length, however slow the machine: not cut at WEBHOOK_BODY_TIMEOUT_MS.
const suite = useIngestSuite({ MAX_BODY_BYTES: String(MAX_BODY_BYTES), MAX_IN_FLIGHT_BYTES: String(100 * 1024), WEBHOOK_BODY_TIMEOUT_MS: '120000' });

/** A signed Meta text message padded with whitespace (still valid JSON) to about `bytes`. */
function paddedMessage(bytes: number): { id: string; body: string } {
  const id = uniqueWamid();
  const json = JSON.stringify(metaTextEnvelope({ id, from: '15550700001', text: 'hello' }));
  return { id, body: json + ' '.repeat(Math.max(0, bytes - json.length)) };
}

async function inFlightGauge(): Promise<number> {
  const text = await (await fetch(suite.ingest.metricsUrl)).text();
  return Number(/^wagate_http_in_flight_requests(?:\{[^}]*\})? (\d+)/m.exec(text)?.[1] ?? NaN);
}

describe('MAX_IN_FLIGHT_BYTES', () => {
  it('answers 503 at once when the bodies in flight would exceed the byte budget, and serves again when they leave', async () => {
    const { socket: slow } = await stalledUpload(suite.ingest.baseUrl, 60 * 1024, 1);
    await waitFor('the stalled upload to hold its slot', async () => (await inFlightGauge()) === 1);

    const large = paddedMessage(50 * 1024);
    const refused = await postMeta(suite.ingest.baseUrl, large.body);
    expect(refused.status).toBe(503);
    expect(refused.body).toBe('overloaded');
    // A small body still fits next to the stalled one.
    expect((await postMeta(suite.ingest.baseUrl, paddedMessage(1024).body)).status).toBe(200);

    slow.destroy();
    await waitFor('the stalled upload to give its bytes back', async () => (await inFlightGauge()) === 0);
    expect((await postMeta(suite.ingest.baseUrl, large.body)).status).toBe(200);
    const [row] = await suite.db.sql`SELECT status FROM webhook_messages WHERE message_id = ${large.id}`;
    expect(row?.status).toBe('queued');
  });
});
