import { judge } from '../../load-tests/lib/thresholds.ts';
import { createRecorder } from '../../load-tests/runner/recorder.ts';

const THRESHOLDS = {
  http_req_duration: ['p(99)<300'],
  'http_req_duration{slo:ack}': ['p(99)<20'],
  'http_req_duration{kind:meta,slo:ack}': ['p(99)<20'],
  'http_req_duration{sender:flood}': ['p(99)<300'],
  http_req_failed: ['rate<0.05'],
  'http_req_failed{sender:flood}': ['rate<0.05'],
  'checks{sender:flood}': ['rate>0.99'],
  'http_req_duration{kind:twilio}': ['p(99)<20'],
};

/**
 * 98 genuine Meta acks at 5 ms, two Twilio acks at 8 ms, two flood answers at 900 ms with the
 * wrong status, and a stats poll at 2 s: the whole metrics and the tagged subsets get different verdicts.
 */
function recordMixedRun() {
  const recorder = createRecorder([]);
  for (let i = 0; i < 98; i++) recorder.request({ kind: 'meta', slo: 'ack', sender: 'other' }, 'meta answered 200', 5, true);
  for (let i = 0; i < 2; i++) recorder.request({ kind: 'twilio-form', slo: 'ack' }, 'twilio-form answered 200', 8, true);
  for (let i = 0; i < 2; i++) recorder.request({ kind: 'meta', sender: 'flood' }, 'meta answered 200', 900, false);
  recorder.unchecked({ kind: 'stats' }, 2000, false);
  return recorder;
}

describe('the Node runner\'s recorder, as k6 keeps sub-metrics', () => {
  it('judges a tagged threshold on the samples carrying every tag of its filter, not on the whole metric', () => {
    const verdicts = judge(THRESHOLDS, recordMixedRun().summarize(Object.keys(THRESHOLDS)));
    expect(verdicts.map(({ metric, ok, samples }) => [metric, ok, samples])).toEqual([
      // 103 samples, the 900 ms and 2 s among the top two: p(99) far over 300.
      ['http_req_duration', false, 103],
      // The acks alone keep the SLO.
      ['http_req_duration{slo:ack}', true, 100],
      ['http_req_duration{kind:meta,slo:ack}', true, 98],
      ['http_req_duration{sender:flood}', false, 2],
      // 2 failed of 103 passes the whole rate; both of the flooder's failed.
      ['http_req_failed', true, 103],
      ['http_req_failed{sender:flood}', false, 2],
      ['checks{sender:flood}', false, 2],
      // A tag no request carries: passes without samples, as k6 does, and says so.
      ['http_req_duration{kind:twilio}', true, 0],
    ]);
    expect(verdicts.find((verdict) => verdict.metric === 'http_req_duration{kind:twilio}')?.actual).toBeNull();
  });

  it('fails a threshold on a percentile it does not compute over a measured metric, rather than passing it as unmeasured', () => {
    const thresholds = { http_req_duration: ['p(97.5)<300'] };
    const [verdict] = judge(thresholds, recordMixedRun().summarize(Object.keys(thresholds)));
    expect(verdict).toMatchObject({ ok: false, actual: null, samples: 103 });
  });

  it('counts iteration_errors from 0, as k6 shows a metric its thresholds name', () => {
    const thresholds = { iteration_errors: ['count==0'] };
    const summary = createRecorder([]).summarize(Object.keys(thresholds));
    expect(summary.iteration_errors).toEqual({ type: 'counter', values: { count: 0 } });
    expect(judge(thresholds, summary)).toMatchObject([{ ok: true, actual: 0 }]);
  });

  it('tallies the checks by name, in the order first seen, as k6\'s root group lists them', () => {
    expect(recordMixedRun().checks()).toEqual([
      { name: 'meta answered 200', passes: 98, fails: 2 },
      { name: 'twilio-form answered 200', passes: 2, fails: 0 },
    ]);
  });
});
