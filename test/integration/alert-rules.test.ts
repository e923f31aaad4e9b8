import { spawnSync } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { parse } from 'yaml';

const ROOT = path.resolve(__dirname, '../..');
const RULES_FILE = 'charts/wagate/files/alerts.yaml';
const UNIT_TESTS_DIR = 'test/alerts';
const RUNBOOKS_FILE = 'docs/runbooks.md';
const METRICS_SOURCES = ['src/telemetry/metrics.ts', 'src/telemetry/autoscaler-metrics.ts'];
const RUNBOOK_URL_PREFIX = 'https://github.com/wagate/wagate/blob/main/docs/runbooks.md#';
/** The four original alerts (ack latency, duplicates, errors, rate limits) and those added since; removing one must be a decision, not an accident. */
const REQUIRED_ALERTS = [
  'WagateAckLatencyHigh',
  'WagateDuplicateRateHigh',
  'WagateErrorRateHigh',
  'WagateRateLimitViolations',
  'WagateHeldMessagesExpiring',
  'WagatePersonalDataOverdue',
  'WagateDeadLettersPresent',
  'WagateWorkerRedeliveries',
  'WagateBrokerBlocked',
  'WagateWorkerGroupPaused',
  'WagateWorkerLag',
  'WagateShardBacklog',
  'WagateShardWithoutConsumer',
  'WagateMessagesStuck',
  'WagateOutboxBacklog',
  'WagateMessagesTooLarge',
  'WagateUnknownConfirmations',
  'WagateIngestDown',
  'WagateAutoscalerNoLeader',
  'WagateAutoscalerFailing',
];

interface AlertRule {
  alert: string;
  expr: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

interface UnitTestFile {
  rule_files: string[];
  tests: { name?: string; alert_rule_test?: { alertname: string; exp_alerts?: unknown[] | null }[] }[];
}

const read = (file: string) => readFileSync(path.join(ROOT, file), 'utf8');

function loadAlerts(): AlertRule[] {
  const parsed = parse(read(RULES_FILE)) as { groups: { rules: AlertRule[] }[] };
  return parsed.groups.flatMap((group) => group.rules).filter((rule) => rule.alert);
}

function unitTestFiles(): string[] {
  return readdirSync(path.join(ROOT, UNIT_TESTS_DIR))
    .filter((name) => name.endsWith('.yaml') || name.endsWith('.yml'))
    .sort()
    .map((name) => `${UNIT_TESTS_DIR}/${name}`);
}

/** Runs promtool from the repository root; a missing promtool fails the test, never skips it. */
function promtool(args: string[]): { status: number | null; output: string } {
  const result = spawnSync('promtool', args, { cwd: ROOT, encoding: 'utf8', timeout: 60_000 });
  if ((result.error as NodeJS.ErrnoException | undefined)?.code === 'ENOENT') {
    throw new Error('promtool was not found on PATH: install the Debian package prometheus (apt-get install prometheus), which provides it');
  }
  if (result.error) throw result.error;
  return { status: result.status, output: `${result.stdout}${result.stderr}` };
}

/** The anchors GitHub gives Markdown headings: lower case, punctuation removed, spaces to '-'. */
function headingAnchors(markdown: string): Set<string> {
  const anchors = new Set<string>();
  let inFence = false;
  for (const line of markdown.split('\n')) {
    // Fences may open inside a list item ("- ```sql").
    if (/^\s*(?:[-*+]\s+|\d+\.\s+)?(```|~~~)/.test(line)) inFence = !inFence;
    const heading = inFence ? null : /^#{1,6}\s+(.+?)\s*#*\s*$/.exec(line);
    if (!heading) continue;
    anchors.add(
      heading[1]!
        .toLowerCase()
        .replace(/[^\p{L}\p{N}\s_-]/gu, '')
        .replace(/\s/g, '-'),
    );
  }
  return anchors;
}

/** Metric names declared in the service's registry, plus the default Node metrics' prefixes. */
function exportedMetricNames(): { names: Set<string>; prefixes: string[] } {
  const names = new Set(METRICS_SOURCES.flatMap((file) => [...read(file).matchAll(/name: '(wagate_[a-z0-9_]+)'/g)].map((match) => match[1]!)));
  return { names, prefixes: ['wagate_process_', 'wagate_nodejs_'] };
}

describe('Prometheus alert rules', () => {
  const alerts = loadAlerts();

  it('defines the original alerts and the ones added since', () => {
    expect(alerts.map((rule) => rule.alert)).toEqual(expect.arrayContaining(REQUIRED_ALERTS));
    expect(new Set(alerts.map((rule) => rule.alert)).size).toBe(alerts.length);
  });

  it('passes promtool check rules', () => {
    const { status, output } = promtool(['check', 'rules', RULES_FILE]);
    expect(output).toContain(`SUCCESS: ${alerts.length} rules found`);
    expect(status).toBe(0);
  });

  it('passes every promtool unit test in test/alerts', () => {
    const files = unitTestFiles();
    expect(files.length).toBeGreaterThan(0);
    const { status, output } = promtool(['test', 'rules', ...files]);
    expect(output).not.toContain('FAILED');
    expect(output.match(/^\s*SUCCESS\s*$/gm)).toHaveLength(files.length);
    expect(status).toBe(0);
  });

  it('gives every alert a severity, a summary, a description and a runbook link', () => {
    for (const rule of alerts) {
      expect({ alert: rule.alert, severity: rule.labels?.severity }).toEqual({
        alert: rule.alert,
        severity: expect.stringMatching(/^(critical|warning)$/),
      });
      expect({ alert: rule.alert, summary: rule.annotations?.summary?.trim() }).toEqual({ alert: rule.alert, summary: expect.stringMatching(/.{10,}/) });
      expect({ alert: rule.alert, description: rule.annotations?.description?.trim() }).toEqual({
        alert: rule.alert,
        description: expect.stringMatching(/.{20,}/),
      });
      expect({ alert: rule.alert, runbook: rule.annotations?.runbook_url?.startsWith(RUNBOOK_URL_PREFIX) }).toEqual({ alert: rule.alert, runbook: true });
    }
  });

  it('links every alert to a heading that exists in docs/runbooks.md', () => {
    const anchors = headingAnchors(read(RUNBOOKS_FILE));
    const missing = alerts
      .map((rule) => ({ alert: rule.alert, anchor: (rule.annotations?.runbook_url ?? '').slice(RUNBOOK_URL_PREFIX.length) }))
      .filter(({ anchor }) => !anchors.has(anchor));
    expect(missing).toEqual([]);
  });

  it('keeps template braces out of the file, so Helm can embed it unchanged', () => {
    expect(read(RULES_FILE)).not.toMatch(/\{\{|\}\}/);
  });

  it('names only wagate metrics that the service exports', () => {
    const { names, prefixes } = exportedMetricNames();
    expect(names.size).toBeGreaterThan(10);
    const unknown = alerts.flatMap((rule) =>
      [...rule.expr.matchAll(/\bwagate_[a-z0-9_]+/g)]
        .map((match) => match[0])
        .filter((name) => !names.has(name) && !names.has(name.replace(/_(bucket|count|sum)$/, '')))
        .filter((name) => !prefixes.some((prefix) => name.startsWith(prefix)))
        .map((name) => `${rule.alert}: ${name}`),
    );
    expect(unknown).toEqual([]);
  });

  it('has a promtool case where each alert fires and one where it stays quiet', () => {
    const firing = new Set<string>();
    const quiet = new Set<string>();
    for (const file of unitTestFiles()) {
      const parsed = parse(read(file)) as UnitTestFile;
      // A unit-test file that loads some other rules file would prove nothing about ours.
      expect(parsed.rule_files.map((rules) => path.relative(ROOT, path.resolve(ROOT, path.dirname(file), rules)))).toEqual([RULES_FILE]);
      for (const check of parsed.tests.flatMap((test) => test.alert_rule_test ?? [])) {
        (check.exp_alerts && check.exp_alerts.length > 0 ? firing : quiet).add(check.alertname);
      }
    }
    const names = alerts.map((rule) => rule.alert);
    expect(names.filter((name) => !firing.has(name))).toEqual([]);
    expect(names.filter((name) => !quiet.has(name))).toEqual([]);
    expect([...firing, ...quiet].filter((name) => !names.includes(name))).toEqual([]);
  });
});
