import { useIngestSuite } from '../support/ingest';
import { postMetaText, stalledUpload, uniqueWamid } from '../support/webhooks';

/**
 * A request holds one of MAX_IN_FLIGHT's slots while its body arrives, before its signature can
 * be checked. A body that dribbles in gives the slot back after WEBHOOK_BODY_TIMEOUT_MS with a
 * 408, not after the whole HTTP_REQUEST_TIMEOUT_MS: with one slot here, a stalled upload would
 * otherwise keep every genuine webhook out (503) for 30 s.
 */
const suite = useIngestSuite({ MAX_IN_FLIGHT: '1', WEBHOOK_BODY_TIMEOUT_MS: '500' });

it('answers a body that has not arrived within WEBHOOK_BODY_TIMEOUT_MS 408, closes its connection and gives its slot back', async () => {
  // 10 of 100 declared bytes, then nothing.
  const stalled = await stalledUpload(suite.ingest.baseUrl, 100, 10);
  const answer = await stalled.answer;
  expect(answer).toMatch(/^HTTP\/1\.1 408 /);
  expect(answer).toMatch(/\r\nconnection: close\r\n/i);
  expect(answer.endsWith('request body not received in time')).toBe(true);
  // The one slot is free again.
  expect((await postMetaText(suite.ingest.baseUrl, { id: uniqueWamid(), text: '1 coke' })).status).toBe(200);
  const metrics = await (await fetch(suite.ingest.metricsUrl)).text();
  expect(metrics).toMatch(/wagate_webhook_events_total\{source="whatsapp",outcome="bad_request"[^}]*\} 1\n/);
});
