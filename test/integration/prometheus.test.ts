import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parse as parseYaml } from 'yaml';
import { PUBLIC_BASE_URL, startPipeline, type Pipeline } from '../support/pipeline';
import { startPrometheus, type RunningPrometheus } from '../support/prometheus';
import { waitFor } from '../support/wait';
import { postMeta, postMetaText, postTwilio, twilioText, uniqueWamid } from '../support/webhooks';

const CHART_FILES = path.resolve(__dirname, '../../charts/wagate/files');
const DASHBOARD_PATH = path.join(CHART_FILES, 'dashboard.json');
const ALERTS_PATH = path.join(CHART_FILES, 'alerts.yaml');
const METRICS_DOC_PATH = path.resolve(__dirname, '../../docs/metrics.md');
/**
 * Documented metrics that neither the dashboard nor an alert reads, each with the reason. Every
 * other metric in docs/metrics.md must be on one of them: a metric that no panel shows is one
 * an operator never looks at.
 */
const UNCHARTED_METRICS: Record<string, string> = {
  wagate_autoscaler_manual_holds_total: 'each hold is also a decision with reason manual_scale, on "Decisions by reason"; "Manual hold until" shows the hold',
};
/** prom-client's process and Node.js defaults: the Process row charts memory, heap, CPU, event-loop delay, GC and descriptors; the rest are for ad hoc queries. */
const DEFAULT_METRIC_PREFIXES = ['wagate_process_', 'wagate_nodejs_'];
/**
 * Panels fed by RabbitMQ's own prometheus plugin (the only source of unacked counts) use refIds
 * starting with RMQ and metrics starting with rabbitmq_. No broker plugin is scraped here, so
 * exactly those metrics are exempt from the exported-names check and may return no data.
 */
const PLUGIN_REF_ID_PREFIX = 'RMQ';
const PLUGIN_METRIC_PREFIX = 'rabbitmq_';
/**
 * The autoscaler row (refIds starting with AS, metrics wagate_autoscaler_*) needs a Kubernetes
 * API server: test/kube/autoscaler.test.ts evaluates it against a scraped `wagate autoscaler`.
 */
const AUTOSCALER_REF_ID_PREFIX = 'AS';
const AUTOSCALER_METRIC_PREFIX = 'wagate_autoscaler_';
/** Grafana's interval variables; any range works for PromQL, and 1m spans the whole test. */
const GRAFANA_RANGE_VARIABLES = /\$\{?__(rate_interval|interval|range)\}?/g;
/**
 * The setup chains an ingest's start, a worker's (up to 50 s for its broker and shards), Prometheus's
 * start (20 s), four scrape waits (20 s each), two waves of traffic settling (15 s each) and the
 * queue gauges (20 s): above that sum, so a slow setup stops at the wait that names what it waited for.
 */
const SETUP_TIMEOUT_MS = 240_000;

interface DataSourceRef {
  type?: string;
  uid?: string;
}
interface Target {
  refId: string;
  expr?: string;
  datasource?: DataSourceRef;
}
interface Panel {
  type: string;
  title: string;
  datasource?: DataSourceRef;
  targets?: Target[];
  panels?: Panel[];
  interval?: string;
}
interface Dashboard {
  uid: string;
  title: string;
  refresh: string;
  schemaVersion: number;
  templating: { list: { name: string; type: string; query?: string }[] };
  panels: Panel[];
}
interface Rule {
  alert?: string;
  record?: string;
  expr: string | number;
}
interface RuleGroup {
  name: string;
  interval?: string;
  rules: Rule[];
}

const dashboard = JSON.parse(readFileSync(DASHBOARD_PATH, 'utf8')) as Dashboard;
const panels = flatten(dashboard.panels);
const targets = panels.flatMap((panel) => (panel.targets ?? []).map((target) => ({ panel: panel.title, ...target })));

function flatten(list: Panel[]): Panel[] {
  return list.flatMap((panel) => [panel, ...flatten(panel.panels ?? [])]);
}

function loadAlertGroups(): RuleGroup[] {
  if (!existsSync(ALERTS_PATH)) {
    throw new Error('charts/wagate/files/alerts.yaml does not exist: the alert rules must ship there as Prometheus rule groups');
  }
  const doc = parseYaml(readFileSync(ALERTS_PATH, 'utf8')) as { groups?: RuleGroup[]; spec?: { groups?: RuleGroup[] } } | null;
  const groups = doc?.groups ?? doc?.spec?.groups;
  if (!Array.isArray(groups) || groups.length === 0) throw new Error('charts/wagate/files/alerts.yaml holds no rule groups');
  return groups;
}

/** As Grafana sends a query: the range variables as a minute, $namespace as a pattern that matches the test's one namespace, ${queue_prefix} as its default. */
function toPromQL(expr: string): string {
  return expr.replace(GRAFANA_RANGE_VARIABLES, '1m').replace(/\$namespace\b/g, '.*').replace(/\$\{queue_prefix\}/g, 'wagate');
}

function metricNamesIn(expr: string): string[] {
  const names: string[] = expr.match(/\b(?:wagate|rabbitmq)_[a-z0-9_]+/g) ?? [];
  if (/\bup\b/.test(expr)) names.push('up');
  return names;
}

let pipeline: Pipeline;
let prometheus: RunningPrometheus;
let alertGroups: RuleGroup[];
let rulesDir: string;
let trafficDoneMs: number;

const scalar = async (expr: string): Promise<number> => {
  const response = await prometheus.query(expr);
  if (response.status !== 'success') throw new Error(`${expr}: ${response.error}`);
  const [sample] = response.data!.result;
  return sample ? Number(sample.value![1]) : Number.NaN;
};

const byLabel = async (expr: string, label: string): Promise<Record<string, number>> => {
  const response = await prometheus.query(expr);
  return Object.fromEntries((response.data?.result ?? []).map((sample) => [sample.metric[label], Number(sample.value![1])]));
};

/** Known label sets are exported from zero; the traffic shows in the others. */
const nonZeroByLabel = async (expr: string, label: string): Promise<Record<string, number>> =>
  Object.fromEntries(Object.entries(await byLabel(expr, label)).filter(([, value]) => value !== 0));

async function settled(id: string): Promise<string> {
  return waitFor(`message ${id} to be processed`, async () => {
    const [row] = await pipeline.db.sql<{ status: string }[]>`SELECT status FROM webhook_messages WHERE message_id = ${id}`;
    return row && ['processed', 'unmatched', 'dead'].includes(row.status) ? row.status : null;
  });
}

/**
 * One wave of the traffic every panel should have something to show for, from senders of its
 * own; returns the ids the worker gets.
 */
async function sendTraffic(wave: number): Promise<string[]> {
  const baseUrl = pipeline.ingest.baseUrl;
  const sender = (n: number) => `155502${wave}000${n}`;
  const order = uniqueWamid();
  const queued = [order, uniqueWamid(), uniqueWamid(), uniqueWamid(), uniqueWamid()];
  expect((await postMetaText(baseUrl, { id: order, from: sender(1), text: '2x margherita, one coke' })).status).toBe(200);
  expect((await postMetaText(baseUrl, { id: order, from: sender(1), text: '2x margherita, one coke' })).status).toBe(200);
  await postMetaText(baseUrl, { id: queued[1], from: sender(2), text: 'one quantum sandwich' });
  await postMetaText(baseUrl, { id: queued[2], from: sender(3), text: '1 pepperoni' });
  // The third message from one sender is over RATE_LIMIT_WHATSAPP_MAX_REQUESTS.
  await postMetaText(baseUrl, { id: queued[3], from: sender(4), text: 'one coke' });
  await postMetaText(baseUrl, { id: queued[4], from: sender(4), text: 'one coke' });
  await postMetaText(baseUrl, { from: sender(4), text: 'one coke' });
  expect((await postMeta(baseUrl, { object: 'whatsapp_business_account' }, { secret: 'forged-secret' })).status).toBe(401);
  expect((await postMeta(baseUrl, `{"object": "whatsapp_business_account", "wave": ${wave}, "entry": [`)).status).toBe(200);
  const twilio = twilioText('1 cafe con leche', `whatsapp:+${sender(5)}`);
  expect((await postTwilio(baseUrl, twilio, { publicBaseUrl: PUBLIC_BASE_URL })).status).toBe(200);
  return [...queued, twilio.find(([name]) => name === 'MessageSid')![1]];
}

/**
 * Prometheus gets a copy of the rule groups without their own interval, so each rule is evaluated
 * every second (the global evaluation_interval) instead of once a minute within a 60 s test.
 */
function writeRulesForTest(groups: RuleGroup[]): string {
  rulesDir = mkdtempSync(path.join(os.tmpdir(), 'wagate-rules-'));
  const file = path.join(rulesDir, 'alerts.json');
  writeFileSync(file, JSON.stringify({ groups: groups.map(({ interval: _interval, ...group }) => group) }));
  return file;
}

describe('Grafana dashboard file', () => {
  it('is the wagate dashboard, with every panel and target on the datasource variable', () => {
    expect(dashboard).toMatchObject({ uid: 'wagate', title: 'wagate', refresh: '30s' });
    expect(dashboard.schemaVersion).toBeGreaterThanOrEqual(36);
    expect(dashboard.templating.list).toContainEqual(expect.objectContaining({ name: 'datasource', type: 'datasource', query: 'prometheus' }));
    const offVariable = [
      ...panels.filter((panel) => panel.type !== 'row' && panel.datasource?.uid !== '${datasource}').map((panel) => `panel ${panel.title}`),
      ...targets.filter((target) => target.datasource?.uid !== '${datasource}').map((target) => `target ${target.panel}/${target.refId}`),
    ];
    expect(offVariable).toEqual([]);
    expect(targets.length).toBeGreaterThanOrEqual(20);
    expect(targets.filter((target) => !target.expr?.trim()).map((target) => `${target.panel}/${target.refId}`)).toEqual([]);
  });

  it('filters every wagate series by the namespace variable, so several installations on one Prometheus stay apart', () => {
    // One installation at a time: panels take max() or sum() of a namespace's series, and over
    // several namespaces at once they merged installations (two autoscaler leaders, one DLQ's depth).
    expect(dashboard.templating.list).toContainEqual(expect.objectContaining({ name: 'namespace', type: 'query', includeAll: false, multi: false }));
    expect(dashboard.templating.list.find((variable) => variable.name === 'namespace')).not.toHaveProperty('allValue');
    const unfiltered = targets.flatMap((target) =>
      [...target.expr!.matchAll(/\bwagate_[a-z0-9_]+(\{[^}]*\})?/g)].filter((m) => !m[1]?.includes('namespace=~"$namespace"')).map((m) => `${target.panel}/${target.refId}: ${m[0]}`),
    );
    expect(unfiltered).toEqual([]);
  });

  it('gives every rate panel a minimum interval of the chart\'s scrape interval, so a window holds several scrapes', () => {
    // $__rate_interval is four of the data source's scrape interval (15 s unless set) unless the
    // panel names its own: against a 30 s scrape, a 60 s window held two samples, and one missed scrape emptied it.
    const short = panels
      .filter((panel) => (panel.targets ?? []).some((target) => target.expr?.includes('$__rate_interval')) && panel.interval !== '30s')
      .map((panel) => panel.title);
    expect(short).toEqual([]);
  });

  it('charts every documented metric on the dashboard or in an alert, or says why not', () => {
    const documented = new Set(
      readFileSync(METRICS_DOC_PATH, 'utf8')
        .split('\n')
        .filter((line) => line.startsWith('| `wagate_'))
        .flatMap((line) => line.split(' | ')[0]!.match(/`wagate_[a-z0-9_]+`/g) ?? [])
        .map((name) => name.slice(1, -1)),
    );
    const read = [...targets.map((target) => target.expr!), ...loadAlertGroups().flatMap((group) => group.rules).map((rule) => String(rule.expr))].join('\n');
    const unread = [...documented]
      .filter((name) => !DEFAULT_METRIC_PREFIXES.some((prefix) => name.startsWith(prefix)) && !(name in UNCHARTED_METRICS))
      .filter((name) => !new RegExp(`\\b${name}(_bucket|_sum|_count)?\\b`).test(read));
    expect(documented.size).toBeGreaterThan(40);
    expect(unread.sort()).toEqual([]);
    // An exemption for a metric that is no longer documented, or is charted after all, is stale.
    expect(Object.keys(UNCHARTED_METRICS).filter((name) => !documented.has(name) || new RegExp(`\\b${name}\\b`).test(read))).toEqual([]);
  });

  it('keeps broker plugin metrics in the RMQ targets only', () => {
    const misplaced = targets.filter(
      (target) => target.expr?.includes(PLUGIN_METRIC_PREFIX) !== target.refId.startsWith(PLUGIN_REF_ID_PREFIX),
    );
    expect(misplaced.map((target) => `${target.panel}/${target.refId}`)).toEqual([]);
  });
});

describe('Grafana dashboard and alert rules against a real Prometheus', () => {
  beforeAll(async () => {
    alertGroups = loadAlertGroups();
    pipeline = await startPipeline({ RATE_LIMIT_WHATSAPP_MAX_REQUESTS: '2' });
    const worker = await pipeline.startWorker();
    prometheus = await startPrometheus({
      jobs: {
        'wagate-ingest': [new URL(pipeline.ingest.metricsUrl).host],
        'wagate-worker': [`127.0.0.1:${worker.metricsPort}`],
      },
      ruleFiles: [writeRulesForTest(alertGroups)],
    });
    // Counters start from a stored value before the traffic, so rates over the traffic are real.
    await prometheus.waitForScrapes(1);
    // Series whose labels are not known up front (latency per source or provider, responses per
    // status code) appear at their first observation, so rate() sees nothing of the wave that
    // creates them: a second wave, after Prometheus has stored the first, gives real rates.
    for (const id of await sendTraffic(1)) await settled(id);
    await prometheus.waitForScrapes(1);
    for (const id of await sendTraffic(2)) await settled(id);
    // The worker reads queue depths from the broker every few seconds; wait for both gauges.
    await waitFor('queue gauges to be scraped', async () => Object.keys(await byLabel('max by (queue) (wagate_queue_ready_messages)', 'queue')).length === 2, 20000);
    trafficDoneMs = Date.now();
    await prometheus.waitForScrapes(3);
  }, SETUP_TIMEOUT_MS);

  afterAll(async () => {
    await prometheus?.stop();
    await pipeline?.stop();
    if (rulesDir) rmSync(rulesDir, { recursive: true, force: true });
  });

  it('evaluates every dashboard query without error, each with a number from the traffic', async () => {
    const failures: string[] = [];
    for (const target of targets) {
      const expr = toPromQL(target.expr!);
      const response = await prometheus.query(expr);
      const values = (response.data?.result ?? []).map((sample) => Number(sample.value?.[1]));
      const name = `${target.panel}/${target.refId}`;
      if (response.status !== 'success') failures.push(`${name}: ${response.error} in ${expr}`);
      else if (expr.includes('$')) failures.push(`${name}: unknown variable in ${expr}`);
      else if (target.refId.startsWith(PLUGIN_REF_ID_PREFIX) || target.refId.startsWith(AUTOSCALER_REF_ID_PREFIX)) continue;
      // NaN is a rate or quantile over series that did not move: the query saw none of the traffic.
      else if (!values.some(Number.isFinite)) failures.push(`${name}: no finite value (${values.length} series) for ${expr}`);
    }
    expect(failures).toEqual([]);
  });

  it('shows the overview\'s latency and shares for each source, as the alerts that share their thresholds judge them', async () => {
    // Summed over the sources, a source answered 503 throughout read 1 % beside a busy healthy
    // one, green, while its critical alert fired.
    const judged = targets.filter((target) => ['Ack p99', 'Duplicate share', 'Error share', 'Duplicate and error share'].includes(target.panel));
    expect(judged).toHaveLength(5);
    for (const target of judged) {
      expect([target.panel, Object.keys(await byLabel(toPromQL(target.expr!), 'source')).sort()]).toEqual([target.panel, ['twilio', 'whatsapp']]);
    }
  });

  it('evaluates every alert expression without error', async () => {
    const failures: string[] = [];
    for (const rule of alertGroups.flatMap((group) => group.rules)) {
      const response = await prometheus.query(String(rule.expr));
      if (response.status !== 'success') failures.push(`${rule.alert ?? rule.record}: ${response.error}`);
    }
    expect(alertGroups.flatMap((group) => group.rules).length).toBeGreaterThan(0);
    expect(failures).toEqual([]);
  });

  it('names only metrics that the ingest and worker really export', async () => {
    const exported = new Set(await prometheus.metricNames());
    const referenced = new Set([
      ...targets.flatMap((target) => metricNamesIn(target.expr!)),
      ...alertGroups.flatMap((group) => group.rules).flatMap((rule) => metricNamesIn(String(rule.expr))),
    ]);
    const missing = [...referenced]
      .filter((name) => !name.startsWith(PLUGIN_METRIC_PREFIX) && !name.startsWith(AUTOSCALER_METRIC_PREFIX) && !exported.has(name))
      .sort();
    expect(missing).toEqual([]);
    expect(referenced.size).toBeGreaterThan(10);
  });

  it('counts the traffic that was sent', async () => {
    expect(await nonZeroByLabel('sum by (outcome) (wagate_webhook_events_total{source="whatsapp"})', 'outcome')).toEqual({
      queued: 10,
      duplicate: 2,
      rate_limited: 2,
      invalid_signature: 2,
      malformed: 2,
    });
    expect(await nonZeroByLabel('sum by (code) (wagate_webhook_requests_total{source="whatsapp"})', 'code')).toEqual({ 200: 16, 401: 2 });
    expect(await nonZeroByLabel('sum by (source) (wagate_orders_created_total)', 'source')).toEqual({ whatsapp: 8, twilio: 2 });
    expect(await nonZeroByLabel('sum by (outcome) (wagate_worker_messages_total)', 'outcome')).toEqual({ processed: 10, unmatched: 2 });
    expect(await nonZeroByLabel('sum by (provider) (wagate_confirmations_total{result="sent"})', 'provider')).toEqual({ whatsapp: 10, twilio: 2 });
    expect(await scalar('sum(wagate_confirmations_total{result!="sent"})')).toBe(0);
    expect(await scalar('sum(wagate_webhook_ack_duration_seconds_count)')).toBe(20);
    expect(await scalar('min(wagate_broker_connected)')).toBe(1);
    expect(await byLabel('max by (queue) (wagate_queue_ready_messages)', 'queue')).toEqual({ work: 0, dead: 0 });
  });

  it('loads every rule and evaluates each with no error', async () => {
    const expected = alertGroups.flatMap((group) => group.rules).length;
    const rules = await waitFor(
      'every rule to be evaluated after the traffic',
      async () => {
        const loaded = (await prometheus.rules()).flatMap((group) => group.rules);
        return loaded.length === expected && loaded.every((rule) => Date.parse(rule.lastEvaluation) > trafficDoneMs) && loaded;
      },
      10000,
    );
    expect(rules.filter((rule) => rule.health !== 'ok' || rule.lastError).map((rule) => `${rule.name}: ${rule.health} ${rule.lastError ?? ''}`)).toEqual([]);
  });
});
