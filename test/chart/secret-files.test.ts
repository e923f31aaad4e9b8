import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { stringify } from 'yaml';
import { checkWorkerConfig, loadConfig, readSecretFile } from '../../src/config';
import { startControlPlane, type ControlPlane } from '../support/control-plane';
import { CHART_DIR, ROOT, find, podTemplates, render, renderError, scenarioFile, type K8sObject, type RenderOptions } from './helm';

/**
 * secrets.asFiles mounts the Secret and names each key by NAME_FILE, for operators whose policy
 * keeps secrets out of environment variables. wagate refuses NAME and NAME_FILE together and a
 * NAME_FILE whose file is missing, so each pod must get exactly one form of each key it reads.
 */

const CRD_DIR = path.join(ROOT, 'test', 'fixtures', 'crds');
const SECRET_FILES = path.join(CHART_DIR, 'ci', 'secret-files-values.yaml');
const SECRET_NAMES = ['DATABASE_URL', 'AMQP_URL', 'WHATSAPP_VERIFY_TOKEN', 'WHATSAPP_APP_SECRET', 'WHATSAPP_ACCESS_TOKEN', 'TWILIO_AUTH_TOKEN', 'TWILIO_WEBHOOK_SHARED_KEY', 'ADMIN_TOKEN', 'OTEL_EXPORTER_OTLP_HEADERS'];
const componentOf = (object: K8sObject) => object.metadata.labels!['app.kubernetes.io/component']!;
const secretOf = (objects: K8sObject[], hook: boolean) => objects.find((o) => o.kind === 'Secret' && Boolean(o.metadata.annotations?.['helm.sh/hook']) === hook)!.stringData as Record<string, string>;

interface EnvEntry {
  name: string;
  value?: string;
  valueFrom?: { secretKeyRef?: { key: string; optional?: boolean } };
}

/**
 * What a container starts with, as Kubernetes hands it over: the ConfigMap through envFrom (the
 * migration hook has none), then its env, and each secret volume's items written under `root` in
 * place of the mount path. A key missing from the Secret fails a required secretKeyRef and a
 * volume item (the kubelet refuses the mount unless the volume is optional, which leaves the file
 * out); an optional secretKeyRef is left out.
 */
function startingEnvironment(objects: K8sObject[], pod: any, secret: Record<string, string>, root: string): NodeJS.ProcessEnv {
  const container = pod.spec.containers[0];
  const env: NodeJS.ProcessEnv = container.envFrom ? { ...find(objects, 'ConfigMap', '-config').data } : {};
  for (const entry of container.env as EnvEntry[]) {
    const ref = entry.valueFrom?.secretKeyRef;
    if (!ref) env[entry.name] = entry.value;
    else if (ref.key in secret) env[entry.name] = secret[ref.key];
    else if (!ref.optional) throw new Error(`couldn't find key ${ref.key} in Secret`);
  }
  for (const mount of container.volumeMounts as { name: string; mountPath: string }[]) {
    const volume = pod.spec.volumes.find((v: any) => v.name === mount.name);
    if (!volume.secret) continue;
    mkdirSync(path.join(root, mount.mountPath), { recursive: true });
    for (const item of volume.secret.items as { key: string; path: string }[]) {
      if (!(item.key in secret) && volume.secret.optional) continue;
      if (!(item.key in secret)) throw new Error(`MountVolume.SetUp failed: couldn't find key ${item.key} in Secret`);
      writeFileSync(path.join(root, mount.mountPath, item.path), secret[item.key]!);
    }
    for (const [name, value] of Object.entries(env)) if (name.endsWith('_FILE') && value?.startsWith(`${mount.mountPath}/`)) env[name] = path.join(root, value);
  }
  return env;
}

/** The Secret keys a container reads, in whichever form, each with the form it comes in. */
function secretKeysOf(container: any): Record<string, 'variable' | 'file'> {
  const keys: Record<string, 'variable' | 'file'> = {};
  for (const entry of container.env as EnvEntry[]) {
    if (entry.valueFrom?.secretKeyRef) keys[entry.name] = 'variable';
    if (entry.name.endsWith('_FILE') && SECRET_NAMES.includes(entry.name.slice(0, -5))) keys[entry.name.slice(0, -5)] = 'file';
  }
  return keys;
}

describe('secrets as files', () => {
  let root: string;
  beforeEach(() => {
    root = mkdtempSync(path.join(os.tmpdir(), 'wagate-secret-files-'));
  });
  afterEach(() => rmSync(root, { recursive: true, force: true }));

  const asFiles = render({ valuesFiles: [SECRET_FILES] });
  const asVariables = render({ valuesFiles: [SECRET_FILES], set: ['secrets.asFiles=false'] });

  it('gives each role as files exactly the keys it gets as variables, from a read-only mount, named by NAME_FILE only', () => {
    const secret = secretOf(asFiles, false);
    const templates = podTemplates(asFiles);
    expect(templates.map(({ owner }) => componentOf(owner)).sort()).toEqual(['autoscaler', 'cleanup', 'ingest', 'migrate', 'worker']);
    for (const { owner, pod } of templates) {
      const role = componentOf(owner);
      const container = pod.spec.containers[0];
      const before = podTemplates(asVariables).find(({ owner }) => componentOf(owner) === role)!.pod.spec.containers[0];
      // As variables, an optional key absent from the Secret is left out; as files, it is not passed.
      const held = Object.keys(secretKeysOf(before)).filter((key) => key in (role === 'migrate' ? secretOf(asFiles, true) : secret));
      expect([role, secretKeysOf(container)]).toEqual([role, Object.fromEntries(held.map((key) => [key, 'file']))]);
      const volume = pod.spec.volumes.find((v: any) => v.name === 'secrets');
      expect([role, volume.secret.items.map((item: any) => item.key)]).toEqual([role, held]);
      expect(volume.secret.secretName).toBe(role === 'migrate' ? 'shop-wagate-migrate' : 'shop-wagate');
      expect(container.volumeMounts).toContainEqual({ name: 'secrets', mountPath: '/etc/wagate/secrets', readOnly: true });
      // The pod's own volumes and its read-only root stay.
      expect(container.volumeMounts).toContainEqual({ name: 'tmp', mountPath: '/tmp' });
      expect(container.securityContext.readOnlyRootFilesystem).toBe(true);
      expect(pod.spec.securityContext.fsGroup).toBe(10001);
    }
    expect(Object.keys(secretKeysOf(find(asFiles, 'Deployment', '-ingest').spec.template.spec.containers[0])).sort()).toEqual(['ADMIN_TOKEN', 'AMQP_URL', 'DATABASE_URL', 'WHATSAPP_APP_SECRET', 'WHATSAPP_VERIFY_TOKEN']);
  });

  it('starts every role from the mounted files, as wagate reads them', () => {
    for (const { owner, pod } of podTemplates(asFiles)) {
      const role = componentOf(owner);
      const env = startingEnvironment(asFiles, pod, secretOf(asFiles, role === 'migrate'), path.join(root, role));
      const config = loadConfig(env);
      expect([role, config.DATABASE_URL]).toEqual([role, 'postgres://wagate:change-me@postgres:5432/wagate']);
      if (role === 'worker') expect(() => checkWorkerConfig(config)).not.toThrow();
      if (role === 'ingest') expect([config.WHATSAPP_APP_SECRET, config.ADMIN_TOKEN]).toEqual([['ci-placeholder-app-secret'], 'ci-placeholder-4dm1n-t0k3n-Zq8x']);
    }
  });

  it('gives a Twilio Webhook Rule\'s shared key to the ingest alone, and refuses it without the auth token the worker replies with', () => {
    const twilio = ['secrets.twilioAuthToken=twilio-token', 'config.PUBLIC_BASE_URL=https://shop.example.com', 'config.TWILIO_ACCOUNT_SID=AC1'];
    for (const files of [true, false]) {
      const objects = render({ valuesFiles: [SECRET_FILES], set: [`secrets.asFiles=${files}`, ...twilio], setString: ['secrets.twilioWebhookSharedKey=shared-current\\,shared-previous'] });
      for (const { owner, pod } of podTemplates(objects)) {
        const role = componentOf(owner);
        const config = loadConfig(startingEnvironment(objects, pod, secretOf(objects, role === 'migrate'), path.join(root, `${role}-${files}`)));
        expect([role, files, config.TWILIO_WEBHOOK_SHARED_KEY]).toEqual([role, files, role === 'ingest' ? ['shared-current', 'shared-previous'] : []]);
        if (role === 'worker') expect(() => checkWorkerConfig(config)).not.toThrow();
      }
    }
    expect(renderError({ valuesFiles: [SECRET_FILES], set: twilio.slice(1), setString: ['secrets.twilioWebhookSharedKey=shared-current'] }))
      .toContain('secrets.twilioAuthToken is required with secrets.twilioWebhookSharedKey');
  });

  it('gives the migration hook the settings the pods get, so a Twilio token an extraEnv gives is checked with its PUBLIC_BASE_URL there too', () => {
    const objects = render({ valuesFiles: [SECRET_FILES], set: [
      'config.PUBLIC_BASE_URL=https://shop.example.com', 'config.TWILIO_ACCOUNT_SID=AC1', 'config.REPLAY_WINDOW_SECONDS=700000',
      'extraEnv[0].name=TWILIO_AUTH_TOKEN', 'extraEnv[0].value=twilio-token',
    ] });
    const roles = podTemplates(objects).map(({ owner, pod }) => {
      const role = componentOf(owner);
      const config = loadConfig(startingEnvironment(objects, pod, secretOf(objects, role === 'migrate'), path.join(root, `extra-env-${role}`)));
      expect([role, config.PUBLIC_BASE_URL, config.TWILIO_AUTH_TOKEN, config.REPLAY_WINDOW_SECONDS]).toEqual([role, 'https://shop.example.com', ['twilio-token'], 700000]);
      return role;
    });
    expect(roles).toContain('migrate');
    // A name an extraEnv sets is left to it, not given twice.
    const overridden = render({ valuesFiles: [SECRET_FILES], set: ['extraEnv[0].name=LOG_LEVEL', 'extraEnv[0].value=debug'] });
    const hookEnv = find(overridden, 'Job', '-migrate').spec.template.spec.containers[0].env as EnvEntry[];
    expect(hookEnv.filter((entry) => entry.name === 'LOG_LEVEL')).toEqual([{ name: 'LOG_LEVEL', value: 'debug' }]);
  });

  it('keeps the Twilio auth token out of ingest pods when a Webhook Rule signs every webhook (ingest.twilioAuthToken false)', () => {
    const twilio = ['secrets.twilioAuthToken=twilio-token', 'config.PUBLIC_BASE_URL=https://shop.example.com', 'config.TWILIO_ACCOUNT_SID=AC1', 'ingest.twilioAuthToken=false'];
    for (const files of [true, false]) {
      const objects = render({ valuesFiles: [SECRET_FILES], set: [`secrets.asFiles=${files}`, ...twilio], setString: ['secrets.twilioWebhookSharedKey=shared-current'] });
      for (const { owner, pod } of podTemplates(objects)) {
        const role = componentOf(owner);
        if (role !== 'ingest' && role !== 'worker') continue;
        const config = loadConfig(startingEnvironment(objects, pod, secretOf(objects, false), path.join(root, `no-token-${role}-${files}`)));
        expect([role, files, config.TWILIO_AUTH_TOKEN, config.TWILIO_WEBHOOK_SHARED_KEY])
          .toEqual(role === 'ingest' ? [role, files, [], ['shared-current']] : [role, files, ['twilio-token'], []]);
      }
    }
    expect(renderError({ valuesFiles: [SECRET_FILES], set: twilio })).toContain('secrets.twilioWebhookSharedKey is required with ingest.twilioAuthToken false');
    // A Secret the chart cannot read: the shared key is required, so that a Secret without it stops the new ingest pods.
    const ingestEnv = (set: string[]) => find(render({ valuesFiles: [scenarioFile('production')], set }), 'Deployment', '-ingest').spec.template.spec.containers[0].env as EnvEntry[];
    const sharedKeyRef = ingestEnv(['secrets.asFiles=false', 'ingest.twilioAuthToken=false']).find((entry) => entry.name === 'TWILIO_WEBHOOK_SHARED_KEY');
    expect(sharedKeyRef?.valueFrom?.secretKeyRef).toEqual({ name: 'wagate-credentials', key: 'TWILIO_WEBHOOK_SHARED_KEY' });
    expect(ingestEnv(['secrets.asFiles=false', 'ingest.twilioAuthToken=false']).map((entry) => entry.name)).not.toContain('TWILIO_AUTH_TOKEN');
    // Unset (a --reuse-values upgrade from before the value): the default, the token passed.
    expect(ingestEnv(['secrets.asFiles=false', 'ingest.twilioAuthToken=null']).map((entry) => entry.name)).toContain('TWILIO_AUTH_TOKEN');
    expect(renderError({ valuesFiles: [scenarioFile('production')], set: ['secrets.asFiles=true', 'secrets.existingSecretKeys={TWILIO_AUTH_TOKEN}', 'ingest.twilioAuthToken=false'] }))
      .toContain('secrets.existingSecretKeys must list TWILIO_WEBHOOK_SHARED_KEY with ingest.twilioAuthToken false');
  });

  it('keeps Meta\'s app secret, which signs webhooks, out of worker pods wherever the chart knows the Secret\'s keys', () => {
    const workerKeys = (options: RenderOptions) => Object.keys(secretKeysOf(find(render(options), 'Deployment', '-worker').spec.template.spec.containers[0]));
    expect(workerKeys({ valuesFiles: [SECRET_FILES] })).toEqual(['DATABASE_URL', 'AMQP_URL', 'WHATSAPP_ACCESS_TOKEN']);
    expect(workerKeys({ valuesFiles: [SECRET_FILES], set: ['secrets.asFiles=false'] })).toEqual(['DATABASE_URL', 'AMQP_URL', 'WHATSAPP_ACCESS_TOKEN', 'TWILIO_AUTH_TOKEN']);
    const existing = ['secrets.existingSecret=wagate-credentials', 'secrets.existingSecretKeys={WHATSAPP_APP_SECRET,WHATSAPP_ACCESS_TOKEN}'];
    expect(workerKeys({ valuesFiles: [scenarioFile('production')], set: ['secrets.asFiles=true', ...existing] })).not.toContain('WHATSAPP_APP_SECRET');
    // A Secret the chart cannot read, passed as variables: the worker's own start-up check is the only one.
    expect(workerKeys({ valuesFiles: [scenarioFile('production')], set: ['secrets.asFiles=false', ...existing] })).toEqual(expect.arrayContaining(['WHATSAPP_APP_SECRET', 'TWILIO_WEBHOOK_SHARED_KEY']));
    // The access token may come from a file a secrets injector writes, which an extraEnv names.
    const injected = ['worker.extraEnv[0].name=WHATSAPP_ACCESS_TOKEN_FILE', 'worker.extraEnv[0].value=/vault/secrets/meta'];
    expect(workerKeys({ valuesFiles: [scenarioFile('production')], set: ['secrets.asFiles=true', 'secrets.existingSecret=wagate-credentials', 'secrets.existingSecretKeys={WHATSAPP_APP_SECRET}', ...injected] })).not.toContain('WHATSAPP_APP_SECRET');
  });

  it('passes the collector\'s headers from the Secret to every role that exports spans, and leaves them to an extraEnv otherwise', () => {
    const key = 'authorization=Bearer collector-key';
    for (const files of [true, false]) {
      const objects = render({ valuesFiles: [SECRET_FILES], set: [`secrets.asFiles=${files}`], setString: [`secrets.otlpHeaders=${key}`] });
      for (const { owner, pod } of podTemplates(objects)) {
        const role = componentOf(owner);
        const env = startingEnvironment(objects, pod, secretOf(objects, role === 'migrate'), path.join(root, `${role}-${files}`));
        // As tracing reads them: the variable, or the file NAME_FILE names (refused when both are set).
        const headers = readSecretFile('OTEL_EXPORTER_OTLP_HEADERS', env) ?? env.OTEL_EXPORTER_OTLP_HEADERS;
        expect([role, files, headers]).toEqual([role, files, role === 'migrate' ? undefined : key]);
      }
    }
    // Not in the Secret: not passed at all, so an extraEnv may give it from a Secret of its own.
    const names = (objects: K8sObject[]) => podTemplates(objects).flatMap(({ pod }) => (pod.spec.containers[0].env as EnvEntry[]).map((entry) => entry.name));
    expect(names(asVariables)).not.toContain('OTEL_EXPORTER_OTLP_HEADERS');
    const ownSecret = ['extraEnv[0].name=OTEL_EXPORTER_OTLP_HEADERS', 'extraEnv[0].valueFrom.secretKeyRef.name=collector', 'extraEnv[0].valueFrom.secretKeyRef.key=headers'];
    expect(names(render({ valuesFiles: [SECRET_FILES], set: ownSecret })).filter((name) => name === 'OTEL_EXPORTER_OTLP_HEADERS')).toHaveLength(5);
    // Blank, or no key=value at all: a mistake that would start every pod and export without a key.
    expect(renderError({ valuesFiles: [SECRET_FILES], setString: ['secrets.otlpHeaders= '] })).toMatch(/otlpHeaders/);
    expect(renderError({ valuesFiles: [SECRET_FILES], setString: ['secrets.otlpHeaders=Bearer collector-key'] })).toMatch(/otlpHeaders/);
    expect(renderError({ valuesFiles: [SECRET_FILES], set: ownSecret, setString: [`secrets.otlpHeaders=${key}`] }))
      .toContain('OTEL_EXPORTER_OTLP_HEADERS is set in an extraEnv while the chart passes it from the Secret (secrets.otlpHeaders, or secrets.existingSecretKeys): set it in one place');
  });

  describe('with a Secret the operator manages', () => {
    const managed = (keys: string[], extra: string[] = []): RenderOptions => ({
      valuesFiles: [scenarioFile('production')],
      set: ['secrets.asFiles=true', `secrets.existingSecretKeys={${keys.join(',')}}`, ...extra],
    });
    const credentials = { DATABASE_URL: 'postgres://wagate:pw@db/wagate', AMQP_URL: 'amqp://wagate:pw@mq', TWILIO_AUTH_TOKEN: 'twilio-token', RABBITMQ_MANAGEMENT_URL: 'http://x' };

    it('mounts only the optional keys declared, so a key it lacks keeps no pod from starting', () => {
      const objects = render(managed(['TWILIO_AUTH_TOKEN']));
      for (const { owner, pod } of podTemplates(objects)) {
        const role = componentOf(owner);
        expect(pod.spec.volumes.find((v: any) => v.name === 'secrets').secret.secretName).toBe('wagate-credentials');
        // No WHATSAPP_*, no ADMIN_TOKEN in this Secret: not mounted, and wagate starts without them.
        const config = loadConfig(startingEnvironment(objects, pod, credentials, path.join(root, role)));
        if (role === 'ingest') expect([config.TWILIO_AUTH_TOKEN, config.ADMIN_TOKEN, config.WHATSAPP_VERIFY_TOKEN]).toEqual([['twilio-token'], undefined, undefined]);
        if (role === 'worker') expect(() => checkWorkerConfig(config)).not.toThrow();
      }
    });

    it('keeps the pods from starting when a declared key is missing, as a required secretKeyRef does', () => {
      const objects = render(managed(['TWILIO_AUTH_TOKEN', 'ADMIN_TOKEN']));
      const ingest = find(objects, 'Deployment', '-ingest').spec.template;
      expect(() => startingEnvironment(objects, ingest, credentials, root)).toThrow(/couldn't find key ADMIN_TOKEN/);
      expect(loadConfig(startingEnvironment(objects, ingest, { ...credentials, ADMIN_TOKEN: 'an-admin-t0ken-Zq8xW2' }, root)).ADMIN_TOKEN).toBe('an-admin-t0ken-Zq8xW2');
    });

    it('passes the collector\'s headers from it only when they are listed in existingSecretKeys', () => {
      const headersOf = (keys: string[]) => {
        const objects = render(managed(keys));
        const ingest = find(objects, 'Deployment', '-ingest').spec.template;
        const env = startingEnvironment(objects, ingest, { ...credentials, OTEL_EXPORTER_OTLP_HEADERS: 'api-key=k1' }, path.join(root, keys.join('-')));
        return readSecretFile('OTEL_EXPORTER_OTLP_HEADERS', env) ?? env.OTEL_EXPORTER_OTLP_HEADERS;
      };
      expect(headersOf(['TWILIO_AUTH_TOKEN', 'OTEL_EXPORTER_OTLP_HEADERS'])).toBe('api-key=k1');
      expect(headersOf(['TWILIO_AUTH_TOKEN'])).toBeUndefined();
    });

    it('refuses a Secret declared without a provider secret, since every webhook would be refused', () => {
      expect(renderError(managed(['ADMIN_TOKEN']))).toContain('secrets.existingSecretKeys must list WHATSAPP_APP_SECRET or TWILIO_AUTH_TOKEN');
      expect(renderError(managed(['WHATSAPP_APP_SECRET', 'WHATSAPP_ACCESS_TOKEN', 'TWILIO_WEBHOOK_SHARED_KEY']))).toContain('secrets.existingSecretKeys lists TWILIO_WEBHOOK_SHARED_KEY without TWILIO_AUTH_TOKEN');
      expect(renderError(managed(['WHATSAPP_APP_SECRET']))).toContain('secrets.existingSecretKeys lists WHATSAPP_APP_SECRET without WHATSAPP_ACCESS_TOKEN');
    });

    it('mounts a listed Twilio shared key for the ingest alone', () => {
      const objects = render(managed(['TWILIO_AUTH_TOKEN', 'TWILIO_WEBHOOK_SHARED_KEY']));
      for (const { owner, pod } of podTemplates(objects)) {
        const role = componentOf(owner);
        const config = loadConfig(startingEnvironment(objects, pod, { ...credentials, TWILIO_WEBHOOK_SHARED_KEY: 'shared-current' }, path.join(root, `shared-${role}`)));
        expect([role, config.TWILIO_WEBHOOK_SHARED_KEY]).toEqual([role, role === 'ingest' ? ['shared-current'] : []]);
      }
    });
  });

  it('refuses a secret both as NAME and as NAME_FILE, which every process would refuse at start', () => {
    const refused = (set: string[]) => renderError({ valuesFiles: [SECRET_FILES], set });
    expect(refused(['secrets.asFiles=false', 'extraEnv[0].name=DATABASE_URL_FILE', 'extraEnv[0].value=/vault/secrets/db'])).toContain(
      'DATABASE_URL_FILE is set in an extraEnv while the chart passes DATABASE_URL from the Secret as a variable',
    );
    expect(refused(['worker.extraEnv[0].name=AMQP_URL', 'worker.extraEnv[0].value=amqp://x'])).toContain('AMQP_URL is set in an extraEnv while secrets.asFiles passes AMQP_URL_FILE');
    // With the files mounted, the chart sets NAME_FILE itself: a second one would be dropped or win, unseen.
    expect(refused(['ingest.extraEnv[0].name=DATABASE_URL_FILE', 'ingest.extraEnv[0].value=/vault/db'])).toContain(
      'DATABASE_URL_FILE is set in an extraEnv while secrets.asFiles sets it to the Secret\'s mounted key, and a pod would get it twice',
    );
    expect(renderError({ valuesFiles: [SECRET_FILES], setString: ['secrets.otlpHeaders=a=b'], set: ['extraEnv[0].name=OTEL_EXPORTER_OTLP_HEADERS_FILE', 'extraEnv[0].value=/vault/otlp'] }))
      .toContain('OTEL_EXPORTER_OTLP_HEADERS_FILE is set in an extraEnv while secrets.asFiles sets it to the Secret\'s mounted key');
    const ownHeadersFile = render({ valuesFiles: [SECRET_FILES], set: ['extraEnv[0].name=OTEL_EXPORTER_OTLP_HEADERS_FILE', 'extraEnv[0].value=/vault/otlp'] });
    expect(find(ownHeadersFile, 'Deployment', '-ingest').spec.template.spec.containers[0].env
      .filter((entry: EnvEntry) => entry.name === 'OTEL_EXPORTER_OTLP_HEADERS_FILE')).toEqual([{ name: 'OTEL_EXPORTER_OTLP_HEADERS_FILE', value: '/vault/otlp' }]);
    expect(refused(['podSecurityContext.fsGroup=null'])).toContain('secrets.asFiles needs podSecurityContext.fsGroup');
    // A key the chart does not pass may still come from a file of its own (a secrets injector's).
    const injected = render({ valuesFiles: [SECRET_FILES], set: ['secrets.asFiles=false', 'extraEnv[0].name=TWILIO_AUTH_TOKEN_FILE', 'extraEnv[0].value=/vault/secrets/twilio',
      'config.PUBLIC_BASE_URL=https://shop.example.com', 'config.TWILIO_ACCOUNT_SID=AC1'] });
    expect(find(injected, 'Deployment', '-ingest').spec.template.spec.containers[0].env).toContainEqual({ name: 'TWILIO_AUTH_TOKEN_FILE', value: '/vault/secrets/twilio' });
  });

  describe('in a real API server', () => {
    let plane: ControlPlane;
    const dryRun = (namespace: string, objects: K8sObject[]) =>
      plane.kubectl(['apply', '--dry-run=server', '-n', namespace, '-f', '-'], { input: objects.map((o) => `---\n${stringify(o)}`).join('\n') });

    beforeAll(async () => {
      plane = await startControlPlane();
      // The monitoring objects the production example renders need their CRDs.
      plane.kubectl(['apply', '--server-side', '-f', CRD_DIR]);
      plane.kubectl(['wait', '--for=condition=Established', '--timeout=60s', '-f', CRD_DIR]);
      for (const namespace of ['files', 'managed']) plane.kubectl(['create', 'namespace', namespace]);
    }, 180_000);

    afterAll(async () => {
      await plane?.stop();
    }, 30_000);

    it('accepts every object with the Secret mounted as files, hooks included', () => {
      const files = render({ valuesFiles: [SECRET_FILES], namespace: 'files' });
      expect(dryRun('files', files).trim().split('\n')).toHaveLength(files.length);
      const managed = render({ valuesFiles: [scenarioFile('production')], namespace: 'managed', set: ['secrets.asFiles=true', 'secrets.existingSecretKeys={TWILIO_AUTH_TOKEN,ADMIN_TOKEN}'] });
      expect(dryRun('managed', managed).trim().split('\n')).toHaveLength(managed.length);
    }, 60_000);

    it('checks the mounts against the pod\'s volumes, so the dry run is a real check', () => {
      const worker = find(render({ valuesFiles: [SECRET_FILES], namespace: 'files' }), 'Deployment', '-worker');
      worker.spec.template.spec.volumes = worker.spec.template.spec.volumes.filter((v: any) => v.name !== 'secrets');
      expect(() => dryRun('files', [worker])).toThrow(/volumeMounts\[\d+\]\.name: Not found: "secrets"/);
    });
  });
});
