import { isWebhookPost, META_WEBHOOK_PATH, TWILIO_WEBHOOK_PATH } from '../../src/webhooks/paths';

describe('which requests are webhook POSTs (their server span is the webhook handler\'s, not the express path\'s)', () => {
  it('matches a POST to either webhook path, with or without a query string', () => {
    expect(isWebhookPost('POST', META_WEBHOOK_PATH)).toBe(true);
    expect(isWebhookPost('POST', `${TWILIO_WEBHOOK_PATH}?tenant=a`)).toBe(true);
  });

  it('matches the variants express routes to the same handler: one trailing slash, any letter case', () => {
    expect(isWebhookPost('POST', `${META_WEBHOOK_PATH}/`)).toBe(true);
    expect(isWebhookPost('POST', META_WEBHOOK_PATH.toUpperCase())).toBe(true);
    expect(isWebhookPost('POST', `${TWILIO_WEBHOOK_PATH}/?x=1`)).toBe(true);
  });

  it('leaves other methods and paths to the express path\'s server span', () => {
    expect(isWebhookPost('GET', META_WEBHOOK_PATH)).toBe(false);
    expect(isWebhookPost('POST', `${META_WEBHOOK_PATH}//`)).toBe(false);
    expect(isWebhookPost('POST', '/api/v1/whatsapp-hardened/stats')).toBe(false);
    expect(isWebhookPost('POST', undefined)).toBe(false);
    expect(isWebhookPost(undefined, META_WEBHOOK_PATH)).toBe(false);
  });
});
