import { find, renderScenario } from './helm';

const ingestPod = (set: string[]) => find(renderScenario('minimal', { set }), 'Deployment', '-ingest').spec.template.spec;

/**
 * A preStop sleep of 0 seconds is refused by API servers without the
 * PodLifecycleSleepActionAllowZero feature gate (on by default only in recent Kubernetes), so
 * ingest.preStopSleepSeconds 0 must leave the hook out rather than render it.
 */
describe('the ingest\'s stop', () => {
  it('pauses ingest.preStopSleepSeconds before SIGTERM, within its grace period', () => {
    const pod = ingestPod(['ingest.preStopSleepSeconds=7']);
    expect(pod.containers[0].lifecycle).toEqual({ preStop: { sleep: { seconds: 7 } } });
    expect(pod.terminationGracePeriodSeconds).toBe(25 + 7 + 10);
  });

  it('renders no preStop hook for ingest.preStopSleepSeconds 0, and a grace period without the pause', () => {
    const pod = ingestPod(['ingest.preStopSleepSeconds=0']);
    expect(pod.containers[0]).not.toHaveProperty('lifecycle');
    expect(pod.terminationGracePeriodSeconds).toBe(25 + 10);
  });
});
