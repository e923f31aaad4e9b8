import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { InboundRequest } from '../../src/webhooks/adapter';

/** Every Meta fixture is stamped with this epoch second (2026-01-01T00:00:00Z). */
export const FIXTURE_TIMESTAMP_SECONDS = 1767225600;
/** A receive time shortly after the fixtures were sent, well inside any replay window. */
export const RECEIVED_AT_MS = (FIXTURE_TIMESTAMP_SECONDS + 5) * 1000;
export const REPLAY_WINDOW_SECONDS = 8 * 24 * 3600;

const FIXTURES = join(__dirname, '..', 'fixtures');

/** The fixture's exact bytes, as the provider would have sent them. */
export function metaFixture(name: string): Buffer {
  return readFileSync(join(FIXTURES, 'meta', `${name}.json`));
}

export function twilioFixture(name: string): Buffer {
  return readFileSync(join(FIXTURES, 'twilio', `${name}.txt`));
}

/** A fixture parsed, for tests that change one field and re-serialise. */
export function metaFixtureJson(name: string): any {
  return JSON.parse(metaFixture(name).toString('utf8'));
}

export function inboundRequest(rawBody: Buffer | string, headers: Record<string, string> = {}, originalUrl = '/'): InboundRequest {
  const lower = Object.fromEntries(Object.entries(headers).map(([name, value]) => [name.toLowerCase(), value]));
  return {
    rawBody: Buffer.isBuffer(rawBody) ? rawBody : Buffer.from(rawBody, 'utf8'),
    header: (name) => lower[name.toLowerCase()],
    originalUrl,
  };
}
