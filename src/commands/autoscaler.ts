import { httpTimeouts, type Config } from '../config';
import { countBacklog } from '../autoscaler/backlog';
import { DEFAULT_TOLERANCE } from '../autoscaler/decide';
import { createKubeClients } from '../autoscaler/kube-client';
import { startLeaderElection } from '../autoscaler/leader-election';
import { createScalingLoop } from '../autoscaler/scaling-loop';
import { createWorkerDeployment } from '../autoscaler/worker-deployment';
import { closeDatabase, databaseFromConfig } from '../db/client';
import { storedShardCount } from '../ledger/shard-count';
import { createSharedPostgresCheck } from '../db/health';
import { boundPort, closeServerNow } from '../server/http-server';
import { probeRoutes } from '../server/probe-routes';
import { createAutoscalerMetrics } from '../telemetry/autoscaler-metrics';
import type { Logger } from '../telemetry/logger';
import { startMetricsServer } from '../server/metrics-server';

const COMPONENT = 'wagate-autoscaler';

export interface RunningAutoscaler {
  metricsPort: number;
  stop(): Promise<void>;
}

/** Campaigns for the Lease; while leading, ticks the scaling loop every AUTOSCALER_INTERVAL_SECONDS. */
export async function startAutoscaler(config: Config, log: Logger): Promise<RunningAutoscaler> {
  const settings = config.autoscaler;
  const kube = createKubeClients();
  const namespace = settings.namespace ?? kube.defaultNamespace;
  const metrics = createAutoscalerMetrics();
  const sql = databaseFromConfig(config, COMPONENT, { maxConnections: 2 });
  const loop = createScalingLoop({
    countBacklog: () => countBacklog(sql),
    countShards: () => storedShardCount(sql, config.QUEUE_PREFIX),
    worker: createWorkerDeployment({ apps: kube.apps, core: kube.core, namespace, name: settings.deployment, component: COMPONENT, identity: settings.identity }),
    policy: { ...settings, shards: config.WORK_SHARDS, tolerance: DEFAULT_TOLERANCE, tickGapMs: settings.intervalMs + settings.renewDeadlineMs },
    manualHoldMs: settings.manualHoldMs,
    metrics,
    log,
  });
  // A tick that outlives the renew deadline may outlive the leadership it started under.
  const ticker = createTicker((signal) => loop.tick(signal), settings.intervalMs, settings.renewDeadlineMs);
  let stopping = false;
  // Asked by the elector and by /readyz on the metrics port, which any peer may reach: once a
  // second at most, whatever the probes' rate, on a pool of two connections.
  const postgresAnswers = createSharedPostgresCheck(sql);
  const elector = startLeaderElection({
    coordination: kube.coordination,
    namespace,
    leaseName: settings.leaseName,
    identity: settings.identity,
    leaseDurationMs: settings.leaseDurationMs,
    renewDeadlineMs: settings.renewDeadlineMs,
    retryPeriodMs: settings.retryPeriodMs,
    log,
    // Without Postgres a leader can count no backlog, and so scale nothing. It only reads, so a
    // server that takes no writes serves it.
    fitToLead: async () => (await postgresAnswers()) !== 'unavailable',
    onLeadingChange(leading) {
      metrics.leader.set(leading ? 1 : 0);
      // Won during stop(): the Lease is being handed back, so nothing starts.
      if (leading && !stopping) {
        loop.forget();
        ticker.start();
      } else {
        void ticker.stop();
        // What it read as leader is the new leader's to report now; a standby's last values would
        // stand beside the leader's in the dashboard's max().
        metrics.paused.set(0);
        metrics.holdingUntil.set(0);
      }
    },
  });
  const readiness = async () => {
    const postgres = await postgresAnswers();
    const kubernetes = elector.apiReachable() ? 'ok' : 'unavailable';
    const ready = postgres !== 'unavailable' && kubernetes === 'ok' && !stopping;
    return { ready, body: { status: ready ? 'ready' : 'not ready', postgres, kubernetes, leader: elector.isLeader(), draining: stopping } };
  };
  const metricsServer = await startMetricsServer(metrics, config.METRICS_PORT, config.HOST, httpTimeouts(config), probeRoutes(readiness));
  const metricsPort = boundPort(metricsServer);
  log.info({ metricsPort, namespace, deployment: settings.deployment, lease: settings.leaseName, identity: settings.identity, server: kube.server }, 'autoscaler started');
  return {
    metricsPort,
    async stop() {
      stopping = true;
      await ticker.stop();
      // Hands the Lease back at once, so a rolling update does not wait out the lease duration.
      await elector.release();
      await ticker.stop();
      metrics.leader.set(0);
      await closeServerNow(metricsServer);
      await closeDatabase(sql, (error) => log.warn({ err: error.message }, 'database pool closed with an error'));
      log.info('autoscaler stopped');
    },
  };
}

/**
 * Runs work now and then every intervalMs, one run at a time. Each run gets a signal that
 * aborts after deadlineMs, or at stop(), which then waits for the run to end.
 */
function createTicker(work: (signal: AbortSignal) => Promise<unknown>, intervalMs: number, deadlineMs: number) {
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<unknown> = Promise.resolve();
  let active = false;
  let abortRun: AbortController | undefined;
  const run = () => {
    timer = undefined;
    const controller = new AbortController();
    abortRun = controller;
    running = work(AbortSignal.any([controller.signal, AbortSignal.timeout(deadlineMs)])).finally(() => {
      if (active) timer = setTimeout(run, intervalMs);
    });
  };
  return {
    start() {
      if (active) return;
      active = true;
      // After a quick stop and start, the run still in hand finishes first: one run at a time.
      void running.then(() => {
        if (active && timer === undefined) run();
      });
    },
    async stop() {
      active = false;
      clearTimeout(timer);
      timer = undefined;
      abortRun?.abort(new Error('the autoscaler stopped leading, so this tick stopped'));
      await running;
    },
  };
}
