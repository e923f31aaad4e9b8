import { loadConfig } from '../../src/config';

describe('autoscaler configuration', () => {
  it('defaults to the worker Deployment, 100 messages per replica, the shard count as maximum and 15/10/2 s leader election', () => {
    const { autoscaler } = loadConfig({ WORK_SHARDS: '6', POD_NAME: 'wagate-autoscaler-abc' });
    expect(autoscaler).toEqual({
      namespace: undefined,
      deployment: 'wagate-worker',
      targetPerReplica: 100,
      minReplicas: 1,
      maxReplicas: 6,
      intervalMs: 10_000,
      scaleDownStabilizationMs: 300_000,
      manualHoldMs: 1_800_000,
      leaseName: 'wagate-worker-autoscaler',
      leaseDurationMs: 15_000,
      renewDeadlineMs: 10_000,
      retryPeriodMs: 2_000,
      identity: 'wagate-autoscaler-abc',
    });
  });

  it('names the Lease after the Deployment and prefers AUTOSCALER_IDENTITY over POD_NAME', () => {
    const { autoscaler } = loadConfig({ AUTOSCALER_DEPLOYMENT: 'orders-worker', AUTOSCALER_IDENTITY: 'me', POD_NAME: 'pod' });
    expect(autoscaler.leaseName).toBe('orders-worker-autoscaler');
    expect(autoscaler.identity).toBe('me');
  });

  it('falls back to the host name and pid as identity outside a pod', () => {
    expect(loadConfig({}).autoscaler.identity).toMatch(new RegExp(`-${process.pid}$`));
  });

  it.each([
    [{ AUTOSCALER_MIN_REPLICAS: '0' }, /AUTOSCALER_MIN_REPLICAS/],
    [{ AUTOSCALER_MIN_REPLICAS: '5', AUTOSCALER_MAX_REPLICAS: '4' }, /AUTOSCALER_MIN_REPLICAS: must not exceed/],
    [{ AUTOSCALER_MIN_REPLICAS: '9', WORK_SHARDS: '8' }, /AUTOSCALER_MIN_REPLICAS: must not exceed/],
    [{ AUTOSCALER_TARGET_PER_REPLICA: '0' }, /AUTOSCALER_TARGET_PER_REPLICA/],
    [{ AUTOSCALER_DEPLOYMENT: 'Worker_1' }, /AUTOSCALER_DEPLOYMENT: must be a Kubernetes name/],
    [{ AUTOSCALER_NAMESPACE: 'has space' }, /AUTOSCALER_NAMESPACE: must be a Kubernetes namespace/],
    [{ AUTOSCALER_NAMESPACE: 'shop.prod' }, /AUTOSCALER_NAMESPACE: must be a Kubernetes namespace: lower-case/],
    [{ AUTOSCALER_NAMESPACE: 'n'.repeat(64) }, /AUTOSCALER_NAMESPACE: must be a Kubernetes namespace: at most 63/],
    [{ AUTOSCALER_RENEW_DEADLINE_SECONDS: '15' }, /AUTOSCALER_RENEW_DEADLINE_SECONDS: must be shorter/],
    [{ AUTOSCALER_RETRY_PERIOD_SECONDS: '10' }, /AUTOSCALER_RETRY_PERIOD_SECONDS: must be shorter/],
    [{ AUTOSCALER_INTERVAL_SECONDS: 'soon' }, /AUTOSCALER_INTERVAL_SECONDS/],
  ])('refuses %o', (env, message) => {
    expect(() => loadConfig(env)).toThrow(message);
  });
});
