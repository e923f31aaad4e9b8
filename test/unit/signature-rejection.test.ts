import { exceedsFormParams, MAX_TWILIO_FORM_PARAMS, metaRejection, SIGNATURE_REJECTIONS, twilioRejection } from '../../src/webhooks/signature-rejection';
import { createMetrics } from '../../src/telemetry/metrics';
import type { InboundRequest } from '../../src/webhooks/adapter';

const request = (headers: Record<string, string>): InboundRequest => ({
  rawBody: Buffer.from('{}'),
  originalUrl: '/',
  header: (name) => headers[name.toLowerCase()],
});

describe('why a signature was refused', () => {
  it('names a missing Meta header, a wrong format, no secret configured and no matching secret', () => {
    const wellFormed = `sha256=${'ab'.repeat(32)}`;
    expect(metaRejection(request({}), ['s'])).toBe('missing_header');
    expect(metaRejection(request({ 'x-hub-signature-256': 'ab'.repeat(32) }), ['s'])).toBe('bad_format');
    expect(metaRejection(request({ 'x-hub-signature-256': 'sha256=xyz' }), ['s'])).toBe('bad_format');
    expect(metaRejection(request({ 'x-hub-signature-256': wellFormed }), [])).toBe('no_secret_configured');
    expect(metaRejection(request({ 'x-hub-signature-256': wellFormed }), ['wrong-secret'])).toBe('no_match');
  });

  it('does the same for Twilio\'s base64 HMAC-SHA1', () => {
    const wellFormed = `${'A'.repeat(27)}=`;
    expect(twilioRejection(request({}), ['t'])).toBe('missing_header');
    expect(twilioRejection(request({ 'x-twilio-signature': 'not base64!' }), ['t'])).toBe('bad_format');
    expect(twilioRejection(request({ 'x-twilio-signature': wellFormed }), [])).toBe('no_secret_configured');
    expect(twilioRejection(request({ 'x-twilio-signature': wellFormed }), ['t'])).toBe('no_match');
  });

  it('names a Twilio form with more parameters than Twilio sends, counted without decoding it', () => {
    const form = (params: number) => ({ ...request({ 'x-twilio-signature': `${'A'.repeat(27)}=` }), rawBody: Buffer.from(Array.from({ length: params }, (_, i) => `p${i}=`).join('&')) });
    expect(twilioRejection(form(MAX_TWILIO_FORM_PARAMS), ['t'])).toBe('no_match');
    expect(twilioRejection(form(MAX_TWILIO_FORM_PARAMS + 1), ['t'])).toBe('too_many_params');
    expect(exceedsFormParams(Buffer.from('a=1'), 1)).toBe(false);
    expect(exceedsFormParams(Buffer.from('a=1&b=2'), 1)).toBe(true);
  });
});

describe('the invalid-signature series', () => {
  it('start at 0 for every reason a signature is refused, so the first of each is seen by rate()', async () => {
    const metrics = createMetrics('ingest', { processMetrics: false });
    const reasons = (await metrics.webhookEvents.get()).values
      .filter((value) => value.labels.outcome === 'invalid_signature' && value.labels.source === 'twilio')
      .map((value) => value.labels.reason);
    expect(reasons.sort()).toEqual([...SIGNATURE_REJECTIONS].sort());
  });
});
