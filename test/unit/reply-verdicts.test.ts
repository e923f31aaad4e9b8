import { metaVerdict, twilioVerdict } from '../../src/replies/reply-verdicts';

describe('Meta verdicts, by error.code before HTTP status', () => {
  it('dead-letters a named refusal even when Meta answers it with a 5xx', () => {
    // 3, 131045 and 133000 are documented with a 500; the others can come through a failing edge.
    for (const code of [3, 190, 131047, 131045, 133000, 133010]) {
      for (const status of [500, 502, 504]) expect([code, status, metaVerdict(status, code, false)]).toEqual([code, status, 'permanent']);
    }
  });

  it('dead-letters a named refusal carried by a 503, a 429 or is_transient', () => {
    expect(metaVerdict(503, 131047, false)).toBe('permanent');
    expect(metaVerdict(429, 190, false)).toBe('permanent');
    expect(metaVerdict(400, 131047, true)).toBe('permanent');
  });

  it('dead-letters a permission code anywhere in the 200-299 range', () => {
    expect([200, 250, 299].map((code) => metaVerdict(500, code, false))).toEqual(['permanent', 'permanent', 'permanent']);
  });

  it('retries a 503 of Graph\'s own or is_transient whose code is not documented or absent: not taken', () => {
    expect(metaVerdict(503, undefined, false, true)).toBe('retry');
    expect(metaVerdict(503, 999999, false)).toBe('retry');
    expect(metaVerdict(500, 999999, true)).toBe('retry');
  });

  it('marks a 503 without Graph\'s error unknown: a proxy\'s, which may come after the request went out', () => {
    expect(metaVerdict(503, undefined, false)).toBe('unknown');
    expect(metaVerdict(503, undefined, false, false)).toBe('unknown');
    // A 429 is a proxy's own rate limit at worst, given before anything is forwarded.
    expect(metaVerdict(429, undefined, false, false)).toBe('retry');
  });

  it('marks a 500, 502 or 504 unknown when its code names no refusal', () => {
    expect(metaVerdict(500, undefined, false)).toBe('unknown');
    expect(metaVerdict(502, 999999, false)).toBe('unknown');
    expect(metaVerdict(500, 131000, false)).toBe('unknown');
    expect(metaVerdict(400, 1, false)).toBe('unknown');
  });

  it('retries 131057, an account in maintenance mode during a throughput upgrade, whatever the status', () => {
    expect([400, 500, 503].map((status) => metaVerdict(status, 131057, false))).toEqual(['retry', 'retry', 'retry']);
  });

  it('retries 341, the Graph application limit, which Meta says to wait out', () => {
    expect(metaVerdict(400, 341, false)).toBe('retry');
  });

  it('dead-letters the refusals a retry within the tiers cannot fix', () => {
    // 368 and 131031: account restricted or locked; 130472: an experiment's holdout; 131042: billing; 133010: number not registered.
    for (const code of [368, 131031, 130472, 131042, 133010]) expect([code, metaVerdict(403, code, false)]).toEqual([code, 'permanent']);
  });

  it('still dead-letters a 4xx with a code not listed anywhere', () => {
    expect(metaVerdict(400, 999999, false)).toBe('permanent');
  });

  it('retries a 408 or 425 without Graph\'s error, a proxy\'s that never forwarded the request, and dead-letters one carrying a refusal', () => {
    expect(metaVerdict(408, undefined, false, false)).toBe('retry');
    expect(metaVerdict(425, undefined, false, false)).toBe('retry');
    expect(metaVerdict(408, 100, false)).toBe('permanent');
    expect(metaVerdict(404, undefined, false, false)).toBe('permanent');
  });
});

describe('Twilio verdicts', () => {
  it('retries 63018, the channel rate limit, whatever the status, as it does 63017', () => {
    expect([400, 403].map((status) => twilioVerdict(status, 63018))).toEqual(['retry', 'retry']);
    expect(twilioVerdict(400, 63017)).toBe('retry');
  });

  it('retries 21730, Twilio under maintenance', () => {
    expect(twilioVerdict(400, 21730)).toBe('retry');
  });

  it('retries a 503 of Twilio\'s own, and marks one without Twilio\'s error unknown', () => {
    expect(twilioVerdict(503, 20503)).toBe('retry');
    expect(twilioVerdict(503, 20001)).toBe('retry');
    expect(twilioVerdict(503, undefined)).toBe('unknown');
    expect(twilioVerdict(429, undefined)).toBe('retry');
  });

  it('keeps a 500 unknown and any other 4xx permanent', () => {
    expect(twilioVerdict(500, 20500)).toBe('unknown');
    expect(twilioVerdict(400, 21211)).toBe('permanent');
  });

  it('retries a 408 or 425 without Twilio\'s error, a proxy\'s that never forwarded the request', () => {
    expect(twilioVerdict(408, undefined)).toBe('retry');
    expect(twilioVerdict(425, undefined)).toBe('retry');
    expect(twilioVerdict(408, 20001)).toBe('permanent');
  });
});
