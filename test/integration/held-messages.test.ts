import { countHeldMessages } from '../../src/ledger/held-messages';
import { releaseSender } from '../../src/ledger/release';
import { PUBLIC_BASE_URL, startPipeline, type Pipeline } from '../support/pipeline';
import { postMetaText, postTwilio, twilioText, uniqueWamid } from '../support/webhooks';
import { waitFor } from '../support/wait';

/**
 * Messages held over the rate limit wait for an operator's release, and cleanup clears their
 * content after PERSONAL_DATA_RETENTION_DAYS, after which no release can re-queue them. The
 * violation alert resolves 15 minutes after the flood: these gauges stand until the decision.
 */
let pipeline: Pipeline;
beforeAll(async () => {
  pipeline = await startPipeline({ RATE_LIMIT_WHATSAPP_MAX_REQUESTS: '1', RATE_LIMIT_TWILIO_MAX_REQUESTS: '1', PERSONAL_DATA_RETENTION_DAYS: '3' });
});
afterAll(async () => pipeline.stop());

async function heldIds(sender: string): Promise<string[]> {
  return (await pipeline.db.sql<{ id: string }[]>`
    SELECT id::text FROM webhook_messages WHERE status = 'rate_limited' AND phone_number LIKE ${`%${sender}`} ORDER BY id`).map((row) => row.id);
}

describe('held messages', () => {
  it('counts the releasable ones per source, and those whose content cleanup clears within a day', async () => {
    const meta = '15550610001';
    for (const text of ['hi', '2 margherita', '1 coke', '3 fries']) expect((await postMetaText(pipeline.ingest.baseUrl, { id: uniqueWamid(), from: meta, text })).status).toBe(200);
    const twilio = '15550610002';
    for (const text of ['hi', '1 coke']) expect((await postTwilio(pipeline.ingest.baseUrl, twilioText(text, `whatsapp:+${twilio}`), { publicBaseUrl: PUBLIC_BASE_URL })).status).toBe(200);
    const [oldest, older, kept] = await heldIds(meta);
    // Held 2 days and 1 hour: within a day of the 3-day retention. One held longer is already cleared.
    await pipeline.db.sql`UPDATE webhook_messages SET created_at = now() - interval '49 hours' WHERE id = ${older!}`;
    await pipeline.db.sql`UPDATE webhook_messages SET created_at = now() - interval '4 days', payload = NULL, raw_body = NULL WHERE id = ${oldest!}`;
    expect(kept).toBeDefined();

    expect(await countHeldMessages(pipeline.db.sql, 3)).toEqual({ whatsapp: { held: 2, expiring: 1 }, twilio: { held: 1, expiring: 0 } });

    // The worker reports them, the same on every worker.
    const worker = await pipeline.startWorker();
    const exposed = () => worker.metrics.registry.metrics();
    await waitFor('the held gauges', async () => /wagate_messages_held\{source="whatsapp",role="worker"\} 2\b/.test(await exposed()));
    const text = await exposed();
    expect(text).toMatch(/wagate_messages_held_expiring\{source="whatsapp",role="worker"\} 1\b/);
    expect(text).toMatch(/wagate_messages_held\{source="twilio",role="worker"\} 1\b/);
    expect(text).toMatch(/wagate_messages_held_expiring\{source="twilio",role="worker"\} 0\b/);

    // Released, they are no longer held; the one whose content is gone stays rate_limited and is not counted.
    expect(await releaseSender(pipeline.db.sql, meta)).toMatchObject({ released: 2, withoutContent: 1 });
    expect(await countHeldMessages(pipeline.db.sql, 3)).toEqual({ whatsapp: { held: 0, expiring: 0 }, twilio: { held: 1, expiring: 0 } });
  });
});
