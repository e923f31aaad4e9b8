import { withoutNumbers } from '../../src/telemetry/without-numbers';

describe('provider error texts for logs and spans', () => {
  it.each([
    ["Twilio 400 code 21211: The 'To' number +15550600012 is not a valid phone number.", "Twilio 400 code 21211: The 'To' number <number> is not a valid phone number."],
    ['Graph API 400 code 131047: Message to +1 (555) 060-0012 failed', 'Graph API 400 code 131047: Message to <number> failed'],
    ['recipient 49 151 2345 6789 unknown', 'recipient <number> unknown'],
    ['user US.13491208655302741918 blocked', 'user <user id> blocked'],
    ['Recipient US.a1b2c3d4e5f6g7h8 is not reachable', 'Recipient <user id> is not reachable'],
  ])('masks the numbers in %s, keeping codes and statuses', (text, expected) => {
    expect(withoutNumbers(text)).toBe(expected);
  });

  it('leaves a text without a number as it is', () => {
    expect(withoutNumbers('Graph API 503 code 2: Service temporarily unavailable (retry after 30 s)')).toBe('Graph API 503 code 2: Service temporarily unavailable (retry after 30 s)');
  });
});
