import { statusOf } from '../../src/autoscaler/api-status';
import { DEFAULT_TOLERANCE } from '../../src/autoscaler/decide';
import { isPaused, LAST_DECISION_ANNOTATION, MAX_REPLICAS_ANNOTATION, PAUSED_ANNOTATION, parseLastDecision, parseMaxReplicas } from '../../src/autoscaler/ownership';
import { createScalingLoop } from '../../src/autoscaler/scaling-loop';
import type { WorkerDeployment } from '../../src/autoscaler/worker-deployment';
import { createAutoscalerMetrics } from '../../src/telemetry/autoscaler-metrics';
import { createLogger } from '../../src/telemetry/logger';

/**
 * The worker Deployment as the API server keeps it, for the scaling loop alone: every write
 * carries the resourceVersion read and is refused (409) after any other write, as there.
 * test/kube/autoscaler.test.ts runs the loop against a real API server.
 */
function deploymentInMemory(replicas: number) {
  const state = { replicas, revision: '1', annotations: {} as Record<string, string>, resourceVersion: 1, events: [] as { reason: string; message: string }[], eventKeys: new Set<string>() };
  /** What a person or a controller does: any write moves the resourceVersion. */
  const change = (edit: () => void) => {
    edit();
    state.resourceVersion += 1;
  };
  const worker: WorkerDeployment = {
    async read() {
      return {
        replicas: state.replicas, revision: state.revision, paused: isPaused(state.annotations),
        lastDecision: parseLastDecision(state.annotations[LAST_DECISION_ANNOTATION]), maxReplicas: parseMaxReplicas(state.annotations),
        resourceVersion: String(state.resourceVersion), uid: 'worker-uid',
      };
    },
    async scale(decision, resourceVersion) {
      if (resourceVersion !== String(state.resourceVersion)) return 'conflict';
      change(() => {
        state.replicas = decision.replicas;
        state.annotations[LAST_DECISION_ANNOTATION] = JSON.stringify(decision);
      });
      return 'scaled';
    },
    async recordDecision(decision, resourceVersion) {
      if (resourceVersion !== String(state.resourceVersion)) return 'conflict';
      change(() => (state.annotations[LAST_DECISION_ANNOTATION] = JSON.stringify(decision)));
      return 'recorded';
    },
    // As the API server does: an Event's name is taken once.
    async recordEvent(event) {
      if (event.key !== undefined && state.eventKeys.has(event.key)) return 'exists';
      if (event.key !== undefined) state.eventKeys.add(event.key);
      state.events.push({ reason: event.reason, message: event.message });
      return 'created';
    },
  };
  return { state, change, worker };
}

/** The loop over that Deployment, a fixed backlog and clocks the test moves (the wall clock, and one that only goes forward). */
function loopOver(worker: WorkerDeployment, backlog: number, clock: { now: number; monotonic?: number }, scaleDownStabilizationMs: number) {
  return createScalingLoop({
    countBacklog: async () => backlog,
    worker,
    policy: { targetPerReplica: 100, minReplicas: 1, maxReplicas: 8, shards: 8, scaleDownStabilizationMs, tickGapMs: 20_000, tolerance: DEFAULT_TOLERANCE },
    manualHoldMs: 1_800_000,
    metrics: createAutoscalerMetrics(),
    log: createLogger('silent', 'test'),
    now: () => clock.now,
    monotonicNow: () => clock.monotonic ?? clock.now,
  });
}

describe('the scaling loop', () => {
  it('announces a manual scale whose hold was recorded while the answer was lost, once, at the next tick', async () => {
    const clock = { now: 1_800_000_000_000 };
    const { state, change, worker } = deploymentInMemory(2);
    const loop = createScalingLoop({
      countBacklog: async () => 200, worker, metrics: createAutoscalerMetrics(), log: createLogger('silent', 'test'), now: () => clock.now, manualHoldMs: 1_800_000,
      policy: { targetPerReplica: 100, minReplicas: 1, maxReplicas: 8, shards: 8, scaleDownStabilizationMs: 300_000, tickGapMs: 20_000, tolerance: DEFAULT_TOLERANCE },
    });
    expect(await loop.tick()).toBe('steady');
    // The hold's write goes through, and its answer is lost (the tick's deadline aborted it).
    const recordDecision = worker.recordDecision.bind(worker);
    let lose = true;
    worker.recordDecision = async (decision, resourceVersion, signal) => {
      const result = await recordDecision(decision, resourceVersion, signal);
      if (lose && decision.reason === 'manual_scale') {
        lose = false;
        throw new DOMException('This operation was aborted', 'AbortError');
      }
      return result;
    };
    clock.now += 10_000;
    change(() => (state.replicas = 3));
    expect(await loop.tick()).toBe('error');
    expect(state.events).toEqual([]);
    for (const _ of [1, 2, 3]) {
      clock.now += 10_000;
      expect(await loop.tick()).toBe('manual_hold');
    }
    expect(state.events).toEqual([{ reason: 'ManualScaleDetected', message: expect.stringContaining('manual scale to 3 detected; holding until') }]);
    expect(parseLastDecision(state.annotations[LAST_DECISION_ANNOTATION])).toMatchObject({ reason: 'manual_scale', replicas: 3, announced: true });
  });


  it('resumes at once, without the earlier hold, when the pause annotation is removed', async () => {
    const clock = { now: 1_800_000_000_000 };
    const { state, change, worker } = deploymentInMemory(2);
    const loop = loopOver(worker, 800, clock, 300_000);
    expect(await loop.tick()).toBe('scale_up');
    clock.now += 10_000;
    // kubectl scale: held for 30 minutes.
    change(() => (state.replicas = 3));
    expect(await loop.tick()).toBe('manual_scale');
    clock.now += 10_000;
    // Paused, then resumed within the hold, the count untouched meanwhile.
    change(() => (state.annotations[PAUSED_ANNOTATION] = 'true'));
    expect(await loop.tick()).toBe('paused');
    clock.now += 10_000;
    change(() => delete state.annotations[PAUSED_ANNOTATION]);
    expect(await loop.tick()).toBe('scale_up');
    expect(state.replicas).toBe(6);
  });
});

describe('the scale-down window', () => {
  it('starts afresh after a failed tick, however soon the next one comes', async () => {
    const clock = { now: 1_800_000_000_000 };
    const { state, worker } = deploymentInMemory(4);
    let failing = false;
    const loop = createScalingLoop({
      countBacklog: async () => {
        if (failing) throw new Error('canceling statement due to statement timeout');
        return 100;
      },
      worker, metrics: createAutoscalerMetrics(), log: createLogger('silent', 'test'), now: () => clock.now, monotonicNow: () => clock.now, manualHoldMs: 1_800_000,
      // An interval of 1 s and a renew deadline of 2 s: one failed tick leaves a gap shorter than the 3 s allowed.
      policy: { targetPerReplica: 100, minReplicas: 1, maxReplicas: 8, shards: 8, scaleDownStabilizationMs: 30_000, tickGapMs: 3_000, tolerance: DEFAULT_TOLERANCE },
    });
    const reasons: string[] = [];
    for (let second = 0; second <= 46; second += 1) {
      failing = second === 15;
      reasons.push(await loop.tick());
      clock.now += 1_000;
    }
    expect(reasons[15]).toBe('error');
    // Without the failure the window would have ended at 30 s; it restarted at 16 s.
    expect(reasons.indexOf('scale_down')).toBe(46);
    expect(state.replicas).toBe(1);
  });

  it('runs on a clock that only goes forward: a wall clock set back an hour does not hold the replicas for that hour', async () => {
    const clock = { now: 1_800_000_000_000, monotonic: 5_000 };
    const { state, worker } = deploymentInMemory(4);
    const loop = loopOver(worker, 100, clock, 300_000);
    const reasons = new Set<string>();
    // Ticks 10 s apart; after the first, NTP sets the wall clock back an hour.
    for (let tick = 0; tick <= 31; tick += 1) {
      reasons.add(await loop.tick());
      clock.now += tick === 0 ? -3_600_000 : 10_000;
      clock.monotonic += 10_000;
    }
    expect(reasons).toEqual(new Set(['stabilising', 'scale_down', 'steady']));
    expect(state.replicas).toBe(1);
  });
});

describe('a count set together with a rollout', () => {
  it('scales no higher than the write guard\'s bound on the Deployment, where its own maximum is higher', async () => {
    const clock = { now: 1_800_000_000_000 };
    // An upgrade lowered worker.autoscaling.maxReplicas to 5; this autoscaler still runs with 8.
    const { state, change, worker } = deploymentInMemory(3);
    change(() => (state.annotations[MAX_REPLICAS_ANNOTATION] = '5'));
    const loop = loopOver(worker, 5_000, clock, 300_000);
    expect(await loop.tick()).toBe('scale_up');
    expect(state.replicas).toBe(5);
    clock.now += 10_000;
    expect(await loop.tick()).toBe('steady');
    // A person's count above it comes down to it once their hold has passed.
    change(() => (state.replicas = 7));
    expect(await loop.tick()).toBe('manual_scale');
    clock.now += 1_800_001;
    expect(await loop.tick()).toBe('out_of_bounds');
    expect(state.replicas).toBe(5);
    // An annotation that is no count bounds nothing.
    change(() => (state.annotations[MAX_REPLICAS_ANNOTATION] = 'many'));
    clock.now += 10_000;
    expect(await loop.tick()).toBe('scale_up');
    expect(state.replicas).toBe(8);
  });

  it('says so once, though the write that took the count lost its answer', async () => {
    const clock = { now: 1_800_000_000_000 };
    const { state, change, worker } = deploymentInMemory(4);
    const loop = loopOver(worker, 400, clock, 0);
    expect(await loop.tick()).toBe('steady');
    // The scale back to 4 goes through, and its answer is lost (the tick's deadline aborted it).
    const scale = worker.scale.bind(worker);
    let lose = true;
    worker.scale = async (decision, resourceVersion, signal) => {
      const result = await scale(decision, resourceVersion, signal);
      if (lose) {
        lose = false;
        throw new DOMException('This operation was aborted', 'AbortError');
      }
      return result;
    };
    clock.now += 10_000;
    change(() => {
      state.revision = '2';
      state.replicas = 6;
    });
    expect(await loop.tick()).toBe('error');
    for (const _ of [1, 2]) {
      clock.now += 10_000;
      expect(await loop.tick()).toBe('steady');
    }
    expect(state.events.map((event) => event.reason)).toEqual(['RolloutCountAdopted']);
  });

  it('is taken as the rollout\'s and scaled from, and an Event says so, since a person\'s scale at that moment looks the same', async () => {
    const clock = { now: 1_800_000_000_000 };
    const { state, change, worker } = deploymentInMemory(2);
    const loop = loopOver(worker, 200, clock, 0);
    expect(await loop.tick()).toBe('steady');
    clock.now += 10_000;
    // A new revision and a new count in one go.
    change(() => {
      state.revision = '2';
      state.replicas = 6;
    });
    expect(await loop.tick()).toBe('scale_down');
    expect(state.replicas).toBe(2);
    expect(state.events.map((event) => event.reason)).toEqual(['RolloutCountAdopted', 'Scaled']);
    expect(state.events[0]!.message).toMatch(/took 6 replicas, set together with rollout revision 2.*wagate\.io\/autoscaler-paused=true/);
    // Once: the next tick owns the count.
    clock.now += 10_000;
    expect(await loop.tick()).toBe('steady');
    expect(state.events).toHaveLength(2);
  });
});

describe('the status a failed call is logged with', () => {
  it('is the API server\'s HTTP status, and 0 for a call aborted or timed out, which got none', () => {
    expect(statusOf(Object.assign(new Error('Conflict'), { code: 409 }))).toBe(409);
    expect(statusOf(new DOMException('The operation timed out.', 'TimeoutError'))).toBe(0);
    expect(statusOf(new DOMException('This operation was aborted', 'AbortError'))).toBe(0);
    expect(statusOf(new Error('socket hang up'))).toBe(0);
  });
});
