import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseAllDocuments } from 'yaml';

export const ROOT = path.resolve(__dirname, '../..');
export const CHART_DIR = path.join(ROOT, 'charts', 'wagate');
export const SCENARIOS = ['minimal', 'production', 'keda'] as const;
export type Scenario = (typeof SCENARIOS)[number];
/** The APIs the chart's .Capabilities gates look for: render with them so no object is skipped silently. */
export const GATED_API_VERSIONS = [
  'monitoring.coreos.com/v1/ServiceMonitor',
  'monitoring.coreos.com/v1/PodMonitor',
  'monitoring.coreos.com/v1/PrometheusRule',
  'keda.sh/v1alpha1/ScaledObject',
];
const HELM_VERSION = 'v3.22.0';

export interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  spec?: any;
  data?: Record<string, string>;
  stringData?: Record<string, string>;
  [key: string]: any;
}

export function helmBinary(): string {
  const cache = process.env.WAGATE_CACHE_DIR ?? path.join(process.env.XDG_CACHE_HOME ?? path.join(os.homedir(), '.cache'), 'wagate');
  const binary = path.join(process.env.WAGATE_HELM_BIN ?? path.join(cache, `helm-${HELM_VERSION}`, 'bin'), 'helm');
  if (!existsSync(binary)) throw new Error(`${binary} is missing: run "bash scripts/control-plane.sh" (scripts/test.sh does) to build Helm`);
  return binary;
}

export interface HelmResult {
  status: number | null;
  stdout: string;
  stderr: string;
}

/** Runs helm; a helm that cannot start fails the test rather than skipping it. */
export function helm(args: string[], env: Record<string, string> = {}): HelmResult {
  const result = spawnSync(helmBinary(), args, { cwd: ROOT, encoding: 'utf8', env: { ...process.env, ...env }, timeout: 120_000 });
  if (result.error) throw result.error;
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

export function scenarioFile(scenario: Scenario): string {
  return path.join(CHART_DIR, 'ci', `${scenario}-values.yaml`);
}

export interface RenderOptions {
  valuesFiles?: string[];
  set?: string[];
  /** Values Helm takes as strings whatever they look like (`--set-string`). */
  setString?: string[];
  /** Values read from files (`--set-file`). */
  setFile?: string[];
  apiVersions?: string[];
  namespace?: string;
  releaseName?: string;
}

export function templateArgs(options: RenderOptions): string[] {
  return [
    'template',
    options.releaseName ?? 'shop',
    CHART_DIR,
    '--namespace',
    options.namespace ?? 'wagate',
    ...(options.valuesFiles ?? []).flatMap((file) => ['-f', file]),
    ...(options.set ?? []).flatMap((value) => ['--set', value]),
    ...(options.setString ?? []).flatMap((value) => ['--set-string', value]),
    ...(options.setFile ?? []).flatMap((value) => ['--set-file', value]),
    ...(options.apiVersions ?? GATED_API_VERSIONS).flatMap((api) => ['--api-versions', api]),
  ];
}

/** `helm template` as YAML text; throws with Helm's message when it refuses. */
export function renderText(options: RenderOptions): string {
  const result = helm(templateArgs(options));
  if (result.status !== 0) throw new Error(`helm template failed: ${result.stderr}`);
  return result.stdout;
}

export function parseObjects(text: string): K8sObject[] {
  return parseAllDocuments(text)
    .map((doc) => {
      if (doc.errors.length > 0) throw new Error(`rendered YAML does not parse: ${doc.errors[0]!.message}`);
      return doc.toJS() as K8sObject | null;
    })
    .filter((object): object is K8sObject => object !== null);
}

export function render(options: RenderOptions): K8sObject[] {
  return parseObjects(renderText(options));
}

export function renderScenario(scenario: Scenario, extra: Omit<RenderOptions, 'valuesFiles'> = {}): K8sObject[] {
  return render({ ...extra, valuesFiles: [scenarioFile(scenario)] });
}

/** The message of a render Helm refuses; fails if it renders. */
export function renderError(options: RenderOptions): string {
  const result = helm(templateArgs(options));
  if (result.status === 0) throw new Error('helm template rendered values it should have refused');
  return result.stderr;
}

export function find(objects: K8sObject[], kind: string, nameSuffix: string): K8sObject {
  const found = objects.find((object) => object.kind === kind && object.metadata.name.endsWith(nameSuffix));
  if (!found) throw new Error(`no ${kind} named *${nameSuffix} among ${objects.map((o) => `${o.kind}/${o.metadata.name}`).join(', ')}`);
  return found;
}

export function kinds(objects: K8sObject[]): string[] {
  return objects.map((object) => `${object.kind}/${object.metadata.name}`).sort();
}

/** Every pod template in the objects, with the object it belongs to. */
export function podTemplates(objects: K8sObject[]): { owner: K8sObject; pod: any }[] {
  return objects.flatMap((owner) => {
    if (['Deployment', 'Job'].includes(owner.kind)) return [{ owner, pod: owner.spec.template }];
    if (owner.kind === 'CronJob') return [{ owner, pod: owner.spec.jobTemplate.spec.template }];
    return [];
  });
}
