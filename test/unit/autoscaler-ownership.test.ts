import { clockTime, decisionAtCurrentRevision, isPaused, judgeOwnership, parseLastDecision, type LastDecision, type WorkerSnapshot } from '../../src/autoscaler/ownership';

const NOW = Date.UTC(2026, 11, 1, 14, 30);
const HOLD_MS = 1_800_000;
const last = (change: Partial<LastDecision> = {}): LastDecision => ({ replicas: 3, revision: '2', reason: 'scale_up', atMs: NOW - 60_000, ...change });
const worker = (change: Partial<WorkerSnapshot> = {}): WorkerSnapshot => ({ replicas: 3, revision: '2', paused: false, lastDecision: last(), ...change });

describe('autoscaler ownership of the worker Deployment', () => {
  it.each<[string, WorkerSnapshot, ReturnType<typeof judgeOwnership>]>([
    ['acts when the Deployment has what it last set', worker(), { kind: 'own' }],
    ['adopts the count on its first run', worker({ lastDecision: null }), { kind: 'adopt', why: 'first_run' }],
    ['sees a manual scale when the count differs and the revision did not change', worker({ replicas: 5 }), { kind: 'manual_scale', holdUntilMs: NOW + HOLD_MS }],
    ['takes a changed count that came with a rollout as set by the deployment tool', worker({ replicas: 5, revision: '3' }), { kind: 'adopt', why: 'rollout' }],
    ['holds while a detected manual scale is younger than the hold', worker({ lastDecision: last({ holdUntilMs: NOW + 1 }) }), { kind: 'holding', holdUntilMs: NOW + 1 }],
    ['acts again once the hold is over', worker({ lastDecision: last({ holdUntilMs: NOW }) }), { kind: 'own' }],
    ['sees a second manual scale during a hold and holds anew', worker({ replicas: 1, lastDecision: last({ holdUntilMs: NOW + 5 }) }), { kind: 'manual_scale', holdUntilMs: NOW + HOLD_MS }],
    ['is paused by the annotation, whatever else', worker({ paused: true, replicas: 9 }), { kind: 'paused' }],
    ['adopts a count set while paused, after the last paused tick, once resumed', worker({ replicas: 6, lastDecision: last({ reason: 'paused' }) }), { kind: 'adopt', why: 'pause' }],
  ])('%s', (_name, snapshot, expected) => {
    expect(judgeOwnership(snapshot, NOW, HOLD_MS)).toEqual(expected);
  });

  it('moves its decision to the revision of a rollout that kept the count, so a later kubectl scale is still a person', () => {
    const rolledOut = worker({ revision: '3', lastDecision: last({ holdUntilMs: NOW + 5 }) });
    expect(decisionAtCurrentRevision(rolledOut)).toEqual(last({ revision: '3', holdUntilMs: NOW + 5 }));
    const scaledAfterwards = { ...rolledOut, replicas: 5, lastDecision: decisionAtCurrentRevision(rolledOut) };
    expect(judgeOwnership(scaledAfterwards, NOW, HOLD_MS)).toEqual({ kind: 'manual_scale', holdUntilMs: NOW + HOLD_MS });
    expect(decisionAtCurrentRevision(worker())).toBeNull();
    expect(decisionAtCurrentRevision(worker({ revision: undefined }))).toBeNull();
    expect(decisionAtCurrentRevision(worker({ lastDecision: null, revision: '3' }))).toBeNull();
    expect(decisionAtCurrentRevision(worker({ replicas: 5, revision: '3' }))).toBeNull();
  });

  it('reads the pause annotation only as "true"', () => {
    expect(isPaused({ 'wagate.io/autoscaler-paused': 'true' })).toBe(true);
    expect(isPaused({ 'wagate.io/autoscaler-paused': ' True ' })).toBe(true);
    expect(isPaused({ 'wagate.io/autoscaler-paused': 'false' })).toBe(false);
    expect(isPaused({ 'wagate.io/autoscaler-paused': 'yes please' })).toBe(false);
    expect(isPaused(undefined)).toBe(false);
  });

  it('yields to the scaler the Deployment names when that is not the builtin one', () => {
    expect(isPaused({ 'wagate.io/autoscaling-mode': 'builtin' })).toBe(false);
    expect(isPaused({ 'wagate.io/autoscaling-mode': 'keda' })).toBe(true);
    expect(isPaused({ 'wagate.io/autoscaling-mode': 'hpa' })).toBe(true);
    expect(isPaused({ 'wagate.io/autoscaling-mode': 'off' })).toBe(true);
    expect(isPaused({ 'wagate.io/autoscaling-mode': 'builtin', 'wagate.io/autoscaler-paused': 'true' })).toBe(true);
  });

  it('reads its last decision back, and takes a damaged annotation for none', () => {
    const decision = last({ holdUntilMs: NOW });
    expect(parseLastDecision(JSON.stringify(decision))).toEqual(decision);
    expect(parseLastDecision('{"replicas": "three", "atMs": 1, "reason": "x"}')).toBeNull();
    expect(parseLastDecision('not json')).toBeNull();
    expect(parseLastDecision(undefined)).toBeNull();
  });

  it('writes the end of a hold as HH:MM in UTC', () => {
    expect(clockTime(NOW + HOLD_MS)).toBe('15:00');
  });
});
