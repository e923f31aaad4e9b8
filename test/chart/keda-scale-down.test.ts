import { readFileSync } from 'node:fs';
import path from 'node:path';
import { CHART_DIR, find, renderScenario } from './helm';

/** The comment lines of values.yaml just above a key's line. */
const commentAbove = (key: string): string => {
  const lines = readFileSync(path.join(CHART_DIR, 'values.yaml'), 'utf8').split('\n');
  const index = lines.findIndex((line) => line.trim().startsWith(`${key}:`));
  const comment: string[] = [];
  for (let i = index - 1; i >= 0 && lines[i]!.trim().startsWith('#'); i -= 1) comment.unshift(lines[i]!.trim());
  return comment.join(' ');
};

/**
 * KEDA's cooldownPeriod applies only to scaling to zero, which the chart never does (at least one
 * worker runs in every mode): between minReplicas and maxReplicas the HPA KEDA makes scales,
 * and its scale-down waits for the behaviour's stabilization window.
 */
describe('scaling down in KEDA mode', () => {
  it('waits scaleDownStabilizationSeconds, whatever cooldownPeriod says', () => {
    const set = ['worker.autoscaling.scaleDownStabilizationSeconds=120', 'worker.autoscaling.keda.cooldownPeriod=30'];
    const scaled = find(renderScenario('keda', { set }), 'ScaledObject', '-worker');
    expect(scaled.spec.minReplicaCount).toBeGreaterThanOrEqual(1);
    expect(scaled.spec.advanced.horizontalPodAutoscalerConfig.behavior.scaleDown.stabilizationWindowSeconds).toBe(120);
  });

  it('documents cooldownPeriod as the wait before a scale to zero, which the chart never makes', () => {
    const comment = commentAbove('cooldownPeriod');
    expect(comment).toMatch(/scaling to zero/);
    expect(comment).toMatch(/scaleDownStabilizationSeconds/);
    expect(comment).not.toMatch(/scale down to minReplicas/);
  });
});
