import { exceedsFormParams, MAX_TWILIO_FORM_PARAMS, metaRejection, SIGNATURE_REJECTIONS, twilioRejection } from '../../src/webhooks/signature-rejection';
import { createMetrics } from '../../src/telemetry/metrics';
import type { InboundRequest } from '../../src/webhooks/adapter';

const request = (headers: Record<string, string>): InboundRequest => ({
  rawBody: Buffer.from('{}'),
  originalUrl: '/',
  header: (name) => headers[name.toLowerCase()],
});

const tokens = (authTokens: string[], sharedKeys: string[] = []) => ({ authTokens, sharedKeys });

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
    expect(twilioRejection(request({}), tokens(['t']))).toBe('missing_header');
    expect(twilioRejection(request({ 'x-twilio-signature': 'not base64!' }), tokens(['t']))).toBe('bad_format');
    expect(twilioRejection(request({ 'x-twilio-signature': `${'A'.repeat(43)}=` }), tokens(['t']))).toBe('bad_format');
    expect(twilioRejection(request({ 'x-twilio-signature': wellFormed }), tokens([], ['k']))).toBe('no_secret_configured');
    expect(twilioRejection(request({ 'x-twilio-signature': wellFormed }), tokens(['t']))).toBe('no_match');
  });

  it('checks a signature a Webhook Rule made against the shared keys, in its algorithm\'s format', () => {
    const sha256 = `${'A'.repeat(43)}=`;
    const ruled = (signature: string, settings = 'key=KS00000000000000000000000000000000,algorithm=HMAC_SHA256') =>
      request({ 'x-twilio-signature': signature, 'x-twilio-webhooks-signature-settings': settings });
    expect(twilioRejection(ruled(sha256), tokens(['t'], ['k']))).toBe('no_match');
    expect(twilioRejection(ruled(sha256), tokens(['t']))).toBe('no_secret_configured');
    expect(twilioRejection(ruled(`${'A'.repeat(27)}=`), tokens(['t'], ['k']))).toBe('bad_format');
    expect(twilioRejection(ruled(`${'A'.repeat(27)}=`, 'key=KS1,algorithm=HMAC_SHA1'), tokens(['t'], ['k']))).toBe('no_match');
    expect(twilioRejection(ruled(sha256, 'key=KS1,algorithm=HMAC_SHA512'), tokens(['t'], ['k']))).toBe('bad_format');
    expect(twilioRejection(ruled(sha256, 'HMAC_SHA256'), tokens(['t'], ['k']))).toBe('bad_format');
    expect(twilioRejection(request({ 'x-twilio-webhooks-signature-settings': 'key=KS1,algorithm=HMAC_SHA256' }), tokens(['t'], ['k']))).toBe('missing_header');
  });

  it('names a Twilio form with more parameters than Twilio sends, counted without decoding it', () => {
    const form = (params: number) => ({ ...request({ 'x-twilio-signature': `${'A'.repeat(27)}=` }), rawBody: Buffer.from(Array.from({ length: params }, (_, i) => `p${i}=`).join('&')) });
    expect(twilioRejection(form(MAX_TWILIO_FORM_PARAMS), tokens(['t']))).toBe('no_match');
    expect(twilioRejection(form(MAX_TWILIO_FORM_PARAMS + 1), tokens(['t']))).toBe('too_many_params');
    // A JSON body (signed through the bodySHA256 in its URL) is no form: its text may hold any number of "&".
    expect(twilioRejection({ ...form(MAX_TWILIO_FORM_PARAMS + 1), originalUrl: `/?bodySHA256=${'0'.repeat(64)}` }, tokens(['t']))).toBe('no_match');
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
