import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parse } from 'yaml';
import { checkWorkerConfig, loadConfig } from '../../src/config';
import { SCHEMA_WAIT_MS } from '../../src/db/schema-check';
import { CHART_DIR, SCENARIOS, find, helm, podTemplates, render, renderError, renderScenario, scenarioFile, type K8sObject } from './helm';

/** The release in package.json, which the chart's appVersion must name. */
const PACKAGE_VERSION = (JSON.parse(readFileSync(path.join(__dirname, '..', '..', 'package.json'), 'utf8')) as { version: string }).version;

const minimal = renderScenario('minimal');
const production = renderScenario('production');
const all = SCENARIOS.flatMap((scenario) => renderScenario(scenario));
const LONG_RUNNING = ['ingest', 'worker', 'autoscaler'];
const componentOf = (object: K8sObject) => object.metadata.labels?.['app.kubernetes.io/component'] ?? '';

describe('security', () => {
  it('runs every container non-root with a numeric UID, a read-only root, no escalation, no capabilities and RuntimeDefault seccomp', () => {
    const templates = podTemplates(all);
    expect(templates.length).toBeGreaterThanOrEqual(12);
    for (const { owner, pod } of templates) {
      const where = `${owner.kind}/${owner.metadata.name}`;
      expect([where, pod.spec.securityContext]).toEqual([where, expect.objectContaining({ runAsNonRoot: true, runAsUser: 10001, seccompProfile: { type: 'RuntimeDefault' } })]);
      for (const container of pod.spec.containers) {
        expect([where, container.securityContext]).toEqual([
          where,
          expect.objectContaining({ runAsNonRoot: true, runAsUser: 10001, allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ['ALL'] } }),
        ]);
        expect(container.volumeMounts).toContainEqual({ name: 'tmp', mountPath: '/tmp' });
        expect(container.resources.requests).toHaveProperty('cpu');
        expect(container.resources.limits).toHaveProperty('memory');
      }
      expect(pod.spec.volumes).toContainEqual({ name: 'tmp', emptyDir: { sizeLimit: '64Mi' } });
    }
  });

  it('mounts no ServiceAccount token except the autoscaler\'s, and gives every role its own account', () => {
    for (const { owner, pod } of podTemplates(all)) {
      const role = componentOf(owner);
      expect([role, pod.spec.automountServiceAccountToken]).toEqual([role, role === 'autoscaler']);
      expect(pod.spec.serviceAccountName).toMatch(new RegExp(`-${role}$`));
    }
    const accounts = minimal.filter((o) => o.kind === 'ServiceAccount').map(componentOf).sort();
    expect(accounts).toEqual(['autoscaler', 'cleanup', 'ingest', 'migrate', 'worker']);
  });

  it('probes every long-running container, and rolls pods on a changed Secret or setting', () => {
    for (const { owner, pod } of podTemplates(all).filter(({ owner }) => LONG_RUNNING.includes(componentOf(owner)))) {
      expect([owner.metadata.name, pod.spec.containers[0].livenessProbe?.httpGet?.path, pod.spec.containers[0].readinessProbe?.httpGet?.path]).toEqual([owner.metadata.name, '/healthz', '/readyz']);
      // Liveness is held off for longer than a start may wait for its schema, with room for the
      // start itself: killed first, the process would never say which migrations it waited for.
      const startup = pod.spec.containers[0].startupProbe;
      expect([owner.metadata.name, startup?.httpGet?.path]).toEqual([owner.metadata.name, '/healthz']);
      expect(startup.periodSeconds * startup.failureThreshold).toBeGreaterThanOrEqual(SCHEMA_WAIT_MS / 1000 + 20);
      expect(Object.keys(pod.metadata.annotations)).toEqual(expect.arrayContaining(['checksum/config', 'checksum/secret']));
    }
    const checksum = (objects: K8sObject[], key: string) => find(objects, 'Deployment', '-worker').spec.template.metadata.annotations[key];
    const rotated = renderScenario('minimal', { set: ['secrets.whatsappAppSecret=rotated-secret'] });
    expect(checksum(rotated, 'checksum/secret')).not.toBe(checksum(minimal, 'checksum/secret'));
    const retuned = renderScenario('minimal', { set: ['config.WORKER_PREFETCH=8'] });
    expect(checksum(retuned, 'checksum/config')).not.toBe(checksum(minimal, 'checksum/config'));
  });
});

describe('migrations and cleanup', () => {
  const hooks = (objects: K8sObject[]) => objects.filter((o) => o.metadata.annotations?.['helm.sh/hook']);

  it('runs `migrate` as a pre-install,pre-upgrade hook after the hook Secret it reads, with a delete policy', () => {
    const job = find(minimal, 'Job', '-migrate');
    const secret = find(minimal, 'Secret', '-migrate');
    for (const object of hooks(minimal)) {
      expect(object.metadata.annotations!['helm.sh/hook']).toBe('pre-install,pre-upgrade');
      expect(object.metadata.annotations!['helm.sh/hook-delete-policy']).toBe('before-hook-creation,hook-succeeded');
    }
    const weight = (o: K8sObject) => Number(o.metadata.annotations!['helm.sh/hook-weight']);
    expect(weight(secret)).toBeLessThan(weight(job));
    expect(weight(find(minimal, 'ServiceAccount', '-migrate'))).toBeLessThan(weight(job));
    const container = job.spec.template.spec.containers[0];
    expect(container.args).toEqual(['migrate']);
    expect(container.env.find((e: any) => e.name === 'DATABASE_URL').valueFrom.secretKeyRef).toEqual({ name: secret.metadata.name, key: 'DATABASE_URL' });
    expect(Buffer.from(JSON.stringify(secret.stringData))).toEqual(Buffer.from(JSON.stringify({ DATABASE_URL: 'postgres://wagate:change-me@postgres:5432/wagate' })));
  });

  it('reads an existing Secret directly, and makes no Secret at all then', () => {
    const job = find(production, 'Job', '-migrate');
    expect(job.spec.template.spec.containers[0].env.find((e: any) => e.name === 'DATABASE_URL').valueFrom.secretKeyRef.name).toBe('wagate-credentials');
    expect(production.filter((o) => o.kind === 'Secret')).toEqual([]);
    expect(hooks(production).map((o) => o.kind).sort()).toEqual(['Job', 'NetworkPolicy', 'ServiceAccount']);
  });

  it('runs `cleanup` on a schedule, one at a time', () => {
    const cron = find(production, 'CronJob', '-cleanup');
    expect(cron.spec).toMatchObject({ schedule: '30 2 * * *', timeZone: 'Europe/Berlin', concurrencyPolicy: 'Forbid' });
    expect(cron.spec.jobTemplate.spec.template.spec.containers[0].args).toEqual(['cleanup']);
    const days = find(renderScenario('minimal', { set: ['cleanup.days=45'] }), 'CronJob', '-cleanup');
    expect(days.spec.jobTemplate.spec.template.spec.containers[0].args).toEqual(['cleanup', '--days', '45']);
  });
});

describe('network policies', () => {
  const policy = (objects: K8sObject[], role: string) => find(objects, 'NetworkPolicy', `-${role}`);
  const ports = (rule: any) => rule.ports.map((p: any) => p.port);

  it('admits the public port and the metrics port to ingest, only the metrics port to worker and autoscaler', () => {
    expect(policy(minimal, 'ingest').spec.ingress.map(ports)).toEqual([[3000], [9464]]);
    expect(policy(minimal, 'worker').spec.ingress.map(ports)).toEqual([[9464]]);
    expect(policy(minimal, 'autoscaler').spec.ingress.map(ports)).toEqual([[9464]]);
    expect(policy(minimal, 'cleanup').spec.ingress).toEqual([]);
    expect(policy(production, 'ingest').spec.ingress[0].from[0].namespaceSelector.matchLabels).toEqual({ 'kubernetes.io/metadata.name': 'ingress-nginx' });
  });

  it('lets out DNS, Postgres, RabbitMQ (not to the autoscaler); the API server only to the autoscaler; providers on 443 by ipBlock only to the worker', () => {
    const egress = (objects: K8sObject[], role: string) => policy(objects, role).spec.egress.map(ports);
    expect(egress(minimal, 'ingest')).toEqual([[53, 53], [5432], [5672]]);
    expect(egress(minimal, 'autoscaler')).toEqual([[53, 53], [5432], [443, 6443]]);
    expect(egress(minimal, 'worker')).toEqual([[53, 53], [5432], [5672], [443]]);
    expect(egress(minimal, 'cleanup')).toEqual([[53, 53], [5432]]);
    expect(policy(minimal, 'worker').spec.egress[3].to).toEqual([{ ipBlock: { cidr: '0.0.0.0/0' } }, { ipBlock: { cidr: '::/0' } }]);
    expect(policy(production, 'autoscaler').spec.egress[2].to).toEqual([{ ipBlock: { cidr: '10.96.0.1/32' } }, { ipBlock: { cidr: '172.16.0.0/28' } }]);
    expect(policy(production, 'worker').spec.egress[1].to).toEqual([{ ipBlock: { cidr: '10.20.0.0/24' } }]);
  });

  it('refuses no API server ports, which would let the autoscaler, the one pod with a token, out to every address, and any other rule left without ports or peers', () => {
    expect(renderError({ valuesFiles: [scenarioFile('minimal')], set: ['networkPolicy.kubernetesApi.ports=null'] })).toContain(
      'networkPolicy.kubernetesApi.ports must list the API server\'s ports',
    );
    const emptyList = path.join(mkdtempSync(path.join(tmpdir(), 'wagate-chart-')), 'values.yaml');
    writeFileSync(emptyList, 'networkPolicy:\n  kubernetesApi:\n    ports: []\n');
    expect(renderError({ valuesFiles: [scenarioFile('minimal'), emptyList] })).toContain("at '/networkPolicy/kubernetesApi/ports': minItems");
    for (const name of ['networkPolicy.postgres.port', 'networkPolicy.rabbitmq.port', 'networkPolicy.providers.ports', 'networkPolicy.providers.cidrs', 'config.METRICS_PORT']) {
      expect(renderError({ valuesFiles: [scenarioFile('minimal')], set: [`${name}=null`] })).toContain(`${name} must be set while networkPolicy.enabled`);
    }
  });

  it('lets the providers be reached through an egress proxy on a port of its own', () => {
    const proxied = renderScenario('minimal', { set: ['config.WHATSAPP_GRAPH_API_URL=http://10.9.0.7:3128', 'networkPolicy.providers.ports={3128}', 'networkPolicy.providers.cidrs={10.9.0.7/32}'] });
    expect(policy(proxied, 'worker').spec.egress[3]).toEqual({ ports: [{ port: 3128, protocol: 'TCP' }], to: [{ ipBlock: { cidr: '10.9.0.7/32' } }] });
  });

  it('gives each provider CIDR only the exceptions of its own address family, which the API server requires', () => {
    const set = ['networkPolicy.providers.cidrs={0.0.0.0/0,::/0}', 'networkPolicy.providers.except={10.0.0.0/8,fd00::/8,192.168.0.0/16}'];
    expect(policy(renderScenario('minimal', { set }), 'worker').spec.egress[3].to).toEqual([
      { ipBlock: { cidr: '0.0.0.0/0', except: ['10.0.0.0/8', '192.168.0.0/16'] } },
      { ipBlock: { cidr: '::/0', except: ['fd00::/8'] } },
    ]);
    // Narrowed to the providers' ranges, with the cluster's ranges still excepted: those lie
    // outside every block, exclude nothing, and would have the API server refuse the policy.
    const narrowed = ['networkPolicy.providers.cidrs={157.240.0.0/16,3.0.0.0/8,2a03:2880::/32,::/0}',
      'networkPolicy.providers.except={10.0.0.0/8,157.240.12.0/24,3.3.3.3/32,fd00::/8,2a03:2880:f0ff::/48,2a03:2880:0:1::1/128}'];
    expect(policy(renderScenario('minimal', { set: narrowed }), 'worker').spec.egress[3].to).toEqual([
      { ipBlock: { cidr: '157.240.0.0/16', except: ['157.240.12.0/24'] } },
      { ipBlock: { cidr: '3.0.0.0/8', except: ['3.3.3.3/32'] } },
      { ipBlock: { cidr: '2a03:2880::/32', except: ['2a03:2880:f0ff::/48', '2a03:2880:0:1::1/128'] } },
      { ipBlock: { cidr: '::/0', except: ['fd00::/8', '2a03:2880:f0ff::/48', '2a03:2880:0:1::1/128'] } },
    ]);
    // An IPv4 address written inside an IPv6 one is two of its groups; a group of five digits is no address.
    expect(policy(renderScenario('minimal', { set: ['networkPolicy.providers.except={::ffff:10.0.0.0/104,fd00::/8}'] }), 'worker').spec.egress[3].to)
      .toEqual([{ ipBlock: { cidr: '0.0.0.0/0' } }, { ipBlock: { cidr: '::/0', except: ['::ffff:10.0.0.0/104', 'fd00::/8'] } }]);
    expect(renderError({ valuesFiles: [scenarioFile('minimal')], set: ['networkPolicy.providers.except={12345::/16}'] }))
      .toContain('12345:: is not an IPv6 address: each group between colons is 1 to 4 hex digits');
    for (const [cidr, covering] of [['157.240.0.0/16', '157.240.0.0/16'], ['157.240.0.0/16', '157.0.0.0/8'], ['2a03:2880::/32', '2a03::/16'], ['0.0.0.0/0', '0.0.0.0/0']]) {
      expect(renderError({ valuesFiles: [scenarioFile('minimal')], set: [`networkPolicy.providers.cidrs={${cidr}}`, `networkPolicy.providers.except={${covering}}`] }))
        .toContain(`networkPolicy.providers.except ${covering} covers the whole of networkPolicy.providers.cidrs ${cidr}`);
    }
  });

  it('lets every role out to the OTLP collector on its endpoint\'s port once tracing is configured, and not before', () => {
    // The rule beyond those of an untraced release, which renders none for OTLP.
    const otlpRule = (objects: K8sObject[], role: string) => policy(objects, role).spec.egress[policy(minimal, role).spec.egress.length];
    const untraced = renderScenario('minimal', { set: ['config.OTEL_EXPORTER_OTLP_ENDPOINT='] });
    for (const role of ['ingest', 'worker', 'autoscaler', 'cleanup', 'migrate']) expect([role, otlpRule(untraced, role)]).toEqual([role, undefined]);
    const cases: Array<[string, number]> = [
      ['http://otel-collector.observability:4318', 4318],
      ['https://otlp.example.com', 443],
      ['http://collector/v1', 80],
      ['http://[fd00::10]:4318', 4318],
      ['https://[fd00::10]/v1/traces', 443],
    ];
    for (const [endpoint, port] of cases) {
      const traced = renderScenario('minimal', { set: [`config.OTEL_EXPORTER_OTLP_ENDPOINT=${endpoint}`] });
      for (const role of ['ingest', 'worker', 'autoscaler', 'cleanup', 'migrate']) expect([endpoint, role, otlpRule(traced, role)]).toEqual([endpoint, role, { ports: [{ port, protocol: 'TCP' }] }]);
    }
    const narrowed = renderScenario('minimal', { set: ['config.OTEL_EXPORTER_OTLP_ENDPOINT=http://otel-collector.observability:4318', 'networkPolicy.otlp.to[0].namespaceSelector.matchLabels.team=observability'] });
    expect(otlpRule(narrowed, 'ingest').to).toEqual([{ namespaceSelector: { matchLabels: { team: 'observability' } } }]);
    expect(renderError({ valuesFiles: [scenarioFile('minimal')], set: ['config.OTEL_EXPORTER_OTLP_ENDPOINT=otel-collector:4318'] })).toMatch(/OTEL_EXPORTER_OTLP_ENDPOINT/);
  });
});

describe('the NetworkPolicy against the chart\'s own connection URLs', () => {
  const egressPorts = (objects: K8sObject[], role: string) =>
    find(objects, 'NetworkPolicy', `-${role}`).spec.egress.flatMap((rule: { ports?: { port: number }[] }) => (rule.ports ?? []).map((p) => p.port));
  const databaseUrl = (url: string) => `secrets.databaseUrl=${url.replace(/,/g, '\\,')}`;

  it('refuses a port the URL connects to that the policy would not let out, naming the value to set', () => {
    const refused = (set: string[]) => renderError({ valuesFiles: [scenarioFile('minimal')], set });
    expect(refused([databaseUrl('postgres://wagate:x@pgbouncer:6432/wagate')])).toContain(
      'secrets.databaseUrl connects to port 6432, but networkPolicy.postgres.port is 5432 and no networkPolicy.extraEgress rule lets it out: set networkPolicy.postgres.port to it',
    );
    expect(refused(['secrets.amqpUrl=amqps://wagate:x@b-1.mq.example.com'])).toContain(
      'secrets.amqpUrl connects to port 5671, but networkPolicy.rabbitmq.port is 5672 and no networkPolicy.extraEgress rule lets it out: set networkPolicy.rabbitmq.port to it',
    );
    // Every host of a URL of several: the standby's port too.
    expect(refused([databaseUrl('postgres://wagate:x@a:5432,b:5433/wagate')])).toContain('connects to port 5433');
    expect(refused([databaseUrl('postgres://wagate:p@ss@a:6433/wagate')])).toContain('connects to port 6433');
  });

  it('renders when the ports agree, or when an extraEgress rule lets the URL\'s port out, and leaves alone a release without policies', () => {
    const pgbouncer = renderScenario('minimal', { set: [databaseUrl('postgres://wagate:x@pgbouncer:6432/wagate?sslmode=require'), 'networkPolicy.postgres.port=6432'] });
    expect(egressPorts(pgbouncer, 'ingest')).toContain(6432);
    const amqps = renderScenario('minimal', { set: ['secrets.amqpUrl=amqps://wagate:x@b-1.mq.example.com', 'networkPolicy.rabbitmq.port=5671'] });
    expect(egressPorts(amqps, 'worker')).toContain(5671);
    // The pods through PgBouncer, opened in extraEgress; the migration hook straight to Postgres on postgres.port.
    const split = renderScenario('minimal', { set: [databaseUrl('postgres://wagate:x@pgbouncer:6432/wagate'), 'networkPolicy.extraEgress[0].ports[0].port=6432'] });
    expect(egressPorts(split, 'ingest')).toEqual(expect.arrayContaining([5432, 6432]));
    const ipv6 = renderScenario('minimal', { set: [databaseUrl('postgres://wagate:x@[fd00::5]:6432/wagate'), 'networkPolicy.postgres.port=6432'] });
    expect(egressPorts(ipv6, 'worker')).toContain(6432);
    expect(renderScenario('minimal', { set: ['secrets.amqpUrl=amqps://wagate:x@mq', 'networkPolicy.enabled=false'] }).filter((o) => o.kind === 'NetworkPolicy')).toEqual([]);
  });
});

describe('values', () => {
  it('refuses wrong types, unknown keys and out-of-range values through values.schema.json', () => {
    const refusals: [string, RegExp][] = [
      ['worker.replicas=many', /worker\.replicas|replicas/],
      ['workerz.replicas=2', /additional properties 'workerz' not allowed/],
      ['worker.autoscaling.colour=blue', /additional properties 'colour' not allowed/],
      ['worker.autoscaling.mode=sometimes', /mode/],
      ['worker.autoscaling.minReplicas=0', /minReplicas/],
      ['image.pullPolicy=Sometimes', /pullPolicy/],
      ['config.WORK_SHARDS=eight', /WORK_SHARDS/],
      // What the pods would refuse: a Postgres integer's range, the broker's 16-bit prefetch, dates Postgres stores.
      ['config.RATE_LIMIT_MAX_REQUESTS=2147483648', /RATE_LIMIT_MAX_REQUESTS/],
      ['config.WORKER_PREFETCH=65536', /WORKER_PREFETCH/],
      ['config.ORDER_RETENTION_DAYS=9999999', /ORDER_RETENTION_DAYS/],
      ['config.RETRY_DELAYS_MS=5000\\,2147483648', /RETRY_DELAYS_MS \(5000,2147483648\): each delay must be at most 2147483647 ms/],
      ['config.RETRY_DELAYS_MS=5000\\,99999999999999999999', /each delay must be at most 2147483647 ms/],
      ['config.NOT_A_SETTING=1', /additional properties 'NOT_A_SETTING' not allowed/],
      ['config.ACK_AFTER=later', /ACK_AFTER/],
      ['config.WHATSAPP_GRAPH_API_URL=graph.facebook.com', /WHATSAPP_GRAPH_API_URL/],
      ['config.TWILIO_API_URL=ftp://api.twilio.com', /TWILIO_API_URL/],
      ['config.WHATSAPP_GRAPH_API_VERSION=21.0', /WHATSAPP_GRAPH_API_VERSION/],
      ['config.OTEL_EXPORTER_OTLP_ENDPOINT=otel-collector:4318', /OTEL_EXPORTER_OTLP_ENDPOINT/],
      // What wagate itself would refuse at start, in every pod that reads it.
      ['config.TWILIO_URL_FRAGMENT=#', /TWILIO_URL_FRAGMENT/],
      ['config.PUBLIC_BASE_URL=https://shop.example.com/twilio?x=1', /PUBLIC_BASE_URL/],
      ['config.TWILIO_URL_FRAGMENT=#rc=3 rp=ct', /TWILIO_URL_FRAGMENT/],
      ['secrets.adminToken=too-short', /adminToken/],
      ['secrets.adminToken=Pässwörter-7Gk2rQ9xLm4vT8zB', /adminToken/],
      ['config.TRUSTED_PROXIES=10.0.0.0/8 192.168.0.0/16', /TRUSTED_PROXIES/],
      ['config.TRUSTED_PROXIES=ingress.example.com', /TRUSTED_PROXIES/],
      // Secrets the migration hook never reads, which would stop every ingest or worker pod.
      ['secrets.amqpUrl=wagate:password@rabbitmq:5672', /secrets.amqpUrl must be a URL such as amqp:\/\/user:password@host:5672\/vhost/],
      ['secrets.amqpUrl=amqp:///shop', /secrets.amqpUrl must be a URL/],
      ['secrets.databaseUrl=mysql://wagate@db/shop', /secrets.databaseUrl must be a URL such as postgres:/],
      ['secrets.whatsappAccessToken=Bearer EAAGm0PX4ZCps', /secrets.whatsappAccessToken holds a space/],
    ];
    for (const [set, message] of refusals) expect([set, renderError({ valuesFiles: [scenarioFile('minimal')], set: [set] })]).toEqual([set, expect.stringMatching(message)]);
    // What wagate accepts, the render does too: a socket path and a query, amqps with a vhost and a query.
    const accepted: [string, string, string[]][] = [
      ['DATABASE_URL', 'postgres:///shop?host=/cloudsql/project:region:db', []],
      ['AMQP_URL', 'amqps://u:p@mq.example.com:5671/shop?heartbeat=30', ['networkPolicy.rabbitmq.port=5671']],
    ];
    // The AMQP URL the render lets through is the one the pods accept: a password with a raw /,
    // ? or # (as base64 secrets have) ends the host early, and a % must start an escape.
    const amqpUrls = ['amqp://wagate:ab/cd@rabbitmq:5672', 'amqp://wagate:ab?cd@rabbitmq', 'amqp://wagate:ab#cd@rabbitmq', 'amqp://wagate:50%off@rabbitmq',
      'amqp://wagate:pw@rabbitmq:port', 'amqp://wagate:p@ss@rabbitmq:5672/shop', 'amqp://wagate:ab%2Fcd%25@rabbitmq/shop', 'amqp://rabbitmq', 'amqp://[::1]:5672/', 'amqps://@mq:5671'];
    for (const url of amqpUrls) {
      const podsAccept = (() => { try { loadConfig({ AMQP_URL: url }); return true; } catch { return false; } })();
      const port = url.startsWith('amqps:') ? 5671 : 5672;
      const result = helm(['template', 'shop', CHART_DIR, '-f', scenarioFile('minimal'), '--set-string', `secrets.amqpUrl=${url}`, '--set', `networkPolicy.rabbitmq.port=${port}`]);
      expect([url, result.status === 0 ? 'rendered' : result.stderr]).toEqual([url, podsAccept ? 'rendered' : expect.stringContaining('secrets.amqpUrl must be a URL')]);
    }
    for (const [name, url, extra] of accepted) {
      expect(() => loadConfig({ [name]: url })).not.toThrow();
      const value = name === 'DATABASE_URL' ? 'secrets.databaseUrl' : 'secrets.amqpUrl';
      expect(render({ valuesFiles: [scenarioFile('minimal')], set: [`${value}=${url}`, ...extra] }).length).toBeGreaterThan(0);
    }
    // What wagate accepts, the schema does too.
    // Entries trimmed, empty ones dropped, an IPv6 address with its zone.
    const proxies = '10.0.0.0/8, fd00::/8,loopback,fe80::1%eth0,';
    expect(loadConfig({ TRUSTED_PROXIES: proxies }).TRUSTED_PROXIES).toHaveLength(4);
    expect(find(render({ valuesFiles: [scenarioFile('minimal')], set: [`config.TRUSTED_PROXIES=${proxies.replaceAll(',', '\\,')}`] }), 'ConfigMap', '-config').data?.TRUSTED_PROXIES)
      .toBe(proxies);
  });

  it('fails with a clear message when a required secret is missing, and has no clear-text defaults', () => {
    expect(renderError({})).toContain('secrets.databaseUrl is required');
    expect(renderError({ set: ['secrets.databaseUrl=postgres://x'] })).toContain('secrets.amqpUrl is required');
    expect(renderError({ set: ['secrets.databaseUrl=postgres://x', 'secrets.amqpUrl=amqp://x'] })).toContain('secrets.whatsappAppSecret or secrets.twilioAuthToken is required');
    expect(renderError({ valuesFiles: [scenarioFile('minimal')], set: ['worker.autoscaling.mode=keda'] })).toContain('secrets.rabbitmqManagementUrl is required');
    expect(renderError({ valuesFiles: [scenarioFile('minimal')], set: ['secrets.twilioAuthToken=t'] })).toContain('config.PUBLIC_BASE_URL is required with secrets.twilioAuthToken');
    expect(renderError({ valuesFiles: [scenarioFile('minimal')], set: ['secrets.whatsappAccessToken='] })).toContain('secrets.whatsappAccessToken is required with secrets.whatsappAppSecret');
    expect(renderError({ valuesFiles: [scenarioFile('keda')], set: ['config.TWILIO_ACCOUNT_SID='] })).toContain('config.TWILIO_ACCOUNT_SID is required with secrets.twilioAuthToken');
    const values = readFileSync(path.join(CHART_DIR, 'values.yaml'), 'utf8');
    const secretsBlock = values.slice(values.indexOf('\nsecrets:'), values.indexOf('\nconfig:'));
    // The credentials, not the switches beside them (asFiles, existingSecretKeys).
    const secretValues = secretsBlock.match(/^ {2}\w+: .*$/gm)!.filter((line) => !/^ {2}(asFiles|existingSecretKeys):/.test(line));
    expect(secretValues.length).toBe(11);
    for (const line of secretValues) expect(line).toMatch(/: ""$/);
  });

  it('refuses an ingest PodDisruptionBudget that no eviction could satisfy, since node drains would hang', () => {
    const refusal = 'ingest.podDisruptionBudget.minAvailable (1) must be below the fewest ingest pods (1)';
    const floor = 'ingest.podDisruptionBudget.minAvailable=1';
    expect(renderError({ valuesFiles: [scenarioFile('minimal')], set: [floor, 'ingest.autoscaling.minReplicas=1'] })).toContain(refusal);
    expect(renderError({ valuesFiles: [scenarioFile('minimal')], set: [floor, 'ingest.autoscaling.enabled=false', 'ingest.replicas=1'] })).toContain(refusal);
    // The default, one pod at a time, leaves a single pod evictable: a drain takes it.
    const one = renderScenario('minimal', { set: ['ingest.autoscaling.minReplicas=1'] });
    expect(find(one, 'PodDisruptionBudget', '-ingest').spec.maxUnavailable).toBe(1);
    const single = renderScenario('minimal', { set: ['ingest.autoscaling.minReplicas=1', 'ingest.podDisruptionBudget.enabled=false'] });
    expect(single.filter((o) => o.kind === 'PodDisruptionBudget').map((o) => o.metadata.name)).not.toContainEqual(expect.stringMatching(/-ingest$/));
    expect(single.filter((o) => o.kind === 'HorizontalPodAutoscaler')[0]!.spec.minReplicas).toBe(1);
  });

  it('holds a number given as a string to the same range: an empty string is what leaves the code\'s default', () => {
    const refused = (setString: string) => renderError({ valuesFiles: [scenarioFile('minimal')], setString: [setString] });
    expect(refused('config.PUBLISH_LINGER_MS=101')).toContain('PUBLISH_LINGER_MS');
    expect(refused('config.ACK_PUBLISH_TIMEOUT_MS=0')).toContain('ACK_PUBLISH_TIMEOUT_MS');
    expect(refused('config.ACK_PUBLISH_TIMEOUT_MS=86400001')).toContain('ACK_PUBLISH_TIMEOUT_MS');
    expect(refused('config.ACK_PUBLISH_TIMEOUT_MS=90000000')).toContain('ACK_PUBLISH_TIMEOUT_MS');
    for (const setString of ['config.PUBLISH_LINGER_MS=100', 'config.PUBLISH_LINGER_MS=0', 'config.ACK_PUBLISH_TIMEOUT_MS=1', 'config.ACK_PUBLISH_TIMEOUT_MS=86400000', 'config.ACK_PUBLISH_TIMEOUT_MS=85999999']) {
      expect(renderScenario('minimal', { setString: [setString] }).length).toBeGreaterThan(0);
    }
    expect(() => loadConfig({ NODE_ENV: 'test', PUBLISH_LINGER_MS: '101' })).toThrow(/PUBLISH_LINGER_MS/);
    expect(() => loadConfig({ NODE_ENV: 'test', ACK_PUBLISH_TIMEOUT_MS: '0' })).toThrow(/ACK_PUBLISH_TIMEOUT_MS/);
    expect(() => loadConfig({ NODE_ENV: 'test', ACK_PUBLISH_TIMEOUT_MS: '86400001' })).toThrow(/ACK_PUBLISH_TIMEOUT_MS/);
    expect(loadConfig({ NODE_ENV: 'test', ACK_PUBLISH_TIMEOUT_MS: '86400000' }).ACK_PUBLISH_TIMEOUT_MS).toBe(86400000);
  });

  it('refuses settings that relate wrongly, which every process would refuse at start', () => {
    const refusal = (set: string[]) => renderError({ valuesFiles: [scenarioFile('minimal')], set });
    expect(refusal(['config.RETENTION_DAYS=8'])).toContain('config.RETENTION_DAYS (8) must keep dedupe keys longer than config.REPLAY_WINDOW_SECONDS (691200 s) plus 5 minutes');
    expect(refusal(['config.METRICS_PORT=3000'])).toContain('config.PORT and config.METRICS_PORT are both 3000');
    expect(refusal(['config.MAX_IN_FLIGHT_BYTES=1048576'])).toContain('config.MAX_IN_FLIGHT_BYTES (1048576) is below config.MAX_BODY_BYTES (3145728)');
    expect(refusal(['config.BROKER_MAX_MESSAGE_BYTES=1048576'])).toContain('config.MAX_BODY_BYTES (3145728) is above config.BROKER_MAX_MESSAGE_BYTES (1048576)');
    expect(refusal(['config.RETRY_DELAYS_MS=5000\\,5000'])).toContain('the tiers must ascend');
    expect(refusal(['cleanup.days=8'])).toContain('cleanup.days (8) is shorter than config.REPLAY_WINDOW_SECONDS');
    expect(refusal(['config.RETENTION_DAYS=400'])).toContain('config.ORDER_RETENTION_DAYS (365) is below config.RETENTION_DAYS (400)');
    expect(refusal(['cleanup.days=366'])).toContain('cleanup.days (366) is longer than config.ORDER_RETENTION_DAYS (365)');
    expect(refusal(['autoscaler.renewDeadlineSeconds=15'])).toContain('retryPeriodSeconds (2) < renewDeadlineSeconds (15) < leaseDurationSeconds (15) must hold');
    // Twilio where the chart cannot see the value: a Secret of your own, an extraEnv.
    const ownSecret = ['secrets.existingSecret=wagate-credentials', 'secrets.existingSecretKeys={TWILIO_AUTH_TOKEN}'];
    expect(refusal(ownSecret)).toContain('config.PUBLIC_BASE_URL is required when Twilio is configured');
    expect(refusal([...ownSecret, 'config.PUBLIC_BASE_URL=https://shop.example.com'])).toContain('config.TWILIO_ACCOUNT_SID is required when TWILIO_AUTH_TOKEN is in secrets.existingSecretKeys');
    expect(refusal(['extraEnv[0].name=TWILIO_WEBHOOK_SHARED_KEY_FILE', 'extraEnv[0].value=/vault/twilio'])).toContain('config.PUBLIC_BASE_URL is required when Twilio is configured');
    // What each would do at start instead.
    const base = { NODE_ENV: 'test' };
    expect(() => loadConfig({ ...base, RETENTION_DAYS: '8' })).toThrow(/RETENTION_DAYS/);
    expect(() => loadConfig({ ...base, RETRY_DELAYS_MS: '5000,5000' })).toThrow(/RETRY_DELAYS_MS/);
    expect(() => loadConfig({ ...base, RETENTION_DAYS: '400' })).toThrow(/ORDER_RETENTION_DAYS/);
    // The edges that hold render.
    expect(renderScenario('minimal', { set: ['config.RETENTION_DAYS=9', 'cleanup.days=9', 'config.REPLAY_WINDOW_SECONDS=691200'] }).length).toBeGreaterThan(0);
    const longRetention = renderScenario('minimal', { set: ['config.RETENTION_DAYS=400', 'config.ORDER_RETENTION_DAYS=730', 'cleanup.days=400'] });
    expect(find(longRetention, 'ConfigMap', '-config').data).toMatchObject({ RETENTION_DAYS: '400', ORDER_RETENTION_DAYS: '730' });
  });

  it('keeps every name and label legal with the longest release name Helm allows', () => {
    const releaseName = `shop-${'x'.repeat(48)}`; // 53 characters
    const objects = SCENARIOS.flatMap((scenario) => render({ valuesFiles: [scenarioFile(scenario)], releaseName }));
    const limits: Record<string, number> = { Service: 63, CronJob: 52 };
    const tooLong = objects.filter((o) => o.metadata.name.length > (limits[o.kind] ?? 253)).map((o) => `${o.kind}/${o.metadata.name}`);
    expect(tooLong).toEqual([]);
    const labelValues = objects.flatMap((o) => Object.values({ ...o.metadata.labels }));
    expect(labelValues.filter((value) => value.length > 63)).toEqual([]);
    expect(find(objects, 'Service', '-autoscaler-metrics').metadata.name).toHaveLength(63);
  });

  it('refuses a ServiceMonitor and a PodMonitor together, since every pod would be scraped twice and every sum() doubled', () => {
    expect(renderError({ valuesFiles: [scenarioFile('minimal')], set: ['metrics.serviceMonitor.enabled=true', 'metrics.podMonitor.enabled=true'] }))
      .toContain('metrics.serviceMonitor.enabled and metrics.podMonitor.enabled are both true');
  });

  it('refuses more workers than shards, since a worker beyond them owns no shard', () => {
    expect(renderError({ valuesFiles: [scenarioFile('minimal')], set: ['worker.autoscaling.maxReplicas=40'] })).toContain('is above config.WORK_SHARDS (32)');
  });

  it('counts the workers of the autoscaling mode in use against the shards: worker.replicas when off, maxReplicas otherwise', () => {
    const refusal = (scenario: 'minimal' | 'keda', set: string[]) => renderError({ valuesFiles: [scenarioFile(scenario)], set });
    expect(refusal('minimal', ['worker.autoscaling.mode=off', 'worker.replicas=40'])).toContain('worker.replicas (40) is above config.WORK_SHARDS (32)');
    expect(refusal('minimal', ['worker.autoscaling.mode=hpa', 'config.WORK_SHARDS=8'])).toContain('worker.autoscaling.maxReplicas (16) is above config.WORK_SHARDS (8)');
    expect(refusal('keda', ['config.WORK_SHARDS=8'])).toContain('worker.autoscaling.maxReplicas (32) is above config.WORK_SHARDS (8)');
    // Off, maxReplicas is unused: its default (16) above 8 shards is no reason to refuse.
    const fixed = renderScenario('minimal', { set: ['worker.autoscaling.mode=off', 'config.WORK_SHARDS=8', 'worker.replicas=8'] });
    expect(find(fixed, 'Deployment', '-worker').spec.replicas).toBe(8);
  });

  it('deploys the release of the code beside it: appVersion is package.json\'s version', () => {
    const chart = parse(readFileSync(path.join(CHART_DIR, 'Chart.yaml'), 'utf8')) as { appVersion: string };
    expect(chart.appVersion).toBe(PACKAGE_VERSION);
  });

  it('takes the image tag from appVersion unless set, and pins a digest when given', () => {
    const image = (objects: K8sObject[]) => find(objects, 'Deployment', '-ingest').spec.template.spec.containers[0].image;
    expect(image(minimal)).toBe(`ghcr.io/wagate/wagate:${PACKAGE_VERSION}`);
    expect(image(production)).toBe('registry.example.com/wagate@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef');
    expect(image(render({ valuesFiles: [scenarioFile('minimal')], set: ['image.tag=1.2.3', 'image.repository=registry.example/wagate'] }))).toBe('registry.example/wagate:1.2.3');
  });

  it('passes settings and extraEnv to the pods', () => {
    const config = find(production, 'ConfigMap', '-config').data!;
    expect(config).toMatchObject({ NODE_ENV: 'production', PUBLIC_BASE_URL: 'https://shop.example.com', WORK_SHARDS: '32', DB_POOL_MAX: '8' });
    expect(config).not.toHaveProperty('WHATSAPP_GRAPH_API_URL');
    // A million and more, as YAML numbers from values.yaml, must not print as 3.145728e+06.
    expect(config.MAX_BODY_BYTES).toBe('3145728');
    expect(config).not.toHaveProperty('ACK_AFTER');
    const publishing = find(renderScenario('minimal', { set: ['config.ACK_AFTER=publish', 'config.ACK_PUBLISH_TIMEOUT_MS=500'] }), 'ConfigMap', '-config').data!;
    expect(publishing).toMatchObject({ ACK_AFTER: 'publish', ACK_PUBLISH_TIMEOUT_MS: '500' });
    const objects = renderScenario('minimal', { set: ['extraEnv[0].name=FEATURE_X', 'extraEnv[0].value=on'] });
    for (const { pod } of podTemplates(objects)) expect(pod.spec.containers[0].env).toContainEqual({ name: 'FEATURE_X', value: 'on' });
  });

  it('gives settings that wagate\'s own configuration schema accepts, in every scenario', () => {
    for (const scenario of SCENARIOS) {
      const objects = renderScenario(scenario);
      const settings = find(objects, 'ConfigMap', '-config').data!;
      const secrets = objects.find((o) => o.kind === 'Secret' && !o.metadata.annotations?.['helm.sh/hook'])?.stringData ?? { DATABASE_URL: 'postgres://x@db/wagate', WHATSAPP_APP_SECRET: 'secret', TWILIO_AUTH_TOKEN: 'token' };
      const env = { ...settings, ...secrets };
      expect(() => loadConfig(env)).not.toThrow();
      expect(loadConfig(env).MAX_BODY_BYTES).toBe(3145728);
    }
  });

  it('lets the worker refuse to start without a reply credential, from the environment its pod gets', () => {
    // What Kubernetes hands the worker container: the ConfigMap through envFrom, then each env
    // entry (a secretKeyRef that is optional and absent from the Secret is left out).
    const workerEnv = (objects: K8sObject[], secret: Record<string, string>) => {
      const container = find(objects, 'Deployment', '-worker').spec.template.spec.containers[0];
      const env: Record<string, string> = { ...find(objects, 'ConfigMap', '-config').data };
      for (const entry of container.env as { name: string; value?: string; valueFrom?: { secretKeyRef?: { key: string } } }[]) {
        const key = entry.valueFrom?.secretKeyRef?.key;
        const value = key === undefined ? entry.value : secret[key];
        if (value !== undefined) env[entry.name] = value;
      }
      return env;
    };
    const secretOf = (objects: K8sObject[]) => objects.find((o) => o.kind === 'Secret' && !o.metadata.annotations?.['helm.sh/hook'])!.stringData as Record<string, string>;
    for (const scenario of ['minimal', 'keda'] as const) {
      const objects = renderScenario(scenario);
      expect(() => checkWorkerConfig(loadConfig(workerEnv(objects, secretOf(objects))))).not.toThrow();
    }
    // The same refusal for a Secret the operator manages, which the chart cannot read.
    const managed = renderScenario('production');
    const credentials = { DATABASE_URL: 'postgres://x@db/wagate', AMQP_URL: 'amqp://x', WHATSAPP_APP_SECRET: 'app-secret' };
    expect(() => checkWorkerConfig(loadConfig(workerEnv(managed, credentials)))).toThrow(/WHATSAPP_ACCESS_TOKEN: is required by the worker/);
    expect(() => checkWorkerConfig(loadConfig(workerEnv(managed, { ...credentials, WHATSAPP_ACCESS_TOKEN: 'token' })))).not.toThrow();
  });

  it('comments every key of values.yaml', () => {
    const lines = readFileSync(path.join(CHART_DIR, 'values.yaml'), 'utf8').split('\n');
    const uncommented: string[] = [];
    let coveredIndent = -1; // keys nested in a commented value (e.g. a securityContext) share its comment
    lines.forEach((line, index) => {
      const key = /^( *)([A-Za-z_][\w]*):/.exec(line);
      if (!key) return;
      const indent = key[1]!.length;
      if (coveredIndent >= 0 && indent > coveredIndent) return;
      coveredIndent = -1;
      const previous = lines.slice(0, index).reverse().find((l) => l.trim() !== '') ?? '';
      const isHeader = /:\s*$/.test(line);
      const commented = previous.trim().startsWith('#');
      if (!commented && !isHeader) uncommented.push(line.trim());
      if (previous.trim().startsWith('# --') && isHeader) coveredIndent = indent;
    });
    expect(uncommented).toEqual([]);
  });
});
