import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { request } from 'node:https';
import os from 'node:os';
import path from 'node:path';
import { freePort } from './free-port';

/**
 * A real Kubernetes control plane on loopback: etcd, kube-apiserver and
 * kube-controller-manager, built by scripts/control-plane.sh. There is no scheduler and no
 * kubelet, so pods stay Pending; everything else (validation, admission, RBAC with
 * ServiceAccount tokens, Leases, Events, the scale subresource, the deployment controller)
 * behaves as in a cluster.
 */
export interface ControlPlane {
  server: string;
  /** A kubeconfig that authenticates as cluster admin (group system:masters). */
  kubeconfig: string;
  adminToken: string;
  dir: string;
  binDir: string;
  /** Environment for kubectl and helm: KUBECONFIG and caches inside the run folder. */
  env: Record<string, string>;
  /** Writes a kubeconfig that carries only this bearer token (no client certificate). */
  kubeconfigForToken(token: string, namespace?: string): string;
  kubectl(args: string[], options?: { input?: string; kubeconfig?: string }): string;
  stop(): Promise<void>;
}

const KUBE_VERSION = 'v1.37.2';
/** Starting etcd and the API server takes about 4 s on an idle machine; a busy one needs far more. */
const READY_TIMEOUT_MS = 120_000;
/** Starts of etcd and the API server on fresh ports after one lost a port to another process. */
const PORT_ATTEMPTS = 3;

export function controlPlaneBinDir(): string {
  const cache = process.env.WAGATE_CACHE_DIR ?? path.join(process.env.XDG_CACHE_HOME ?? path.join(os.homedir(), '.cache'), 'wagate');
  return process.env.WAGATE_KUBE_BIN ?? path.join(cache, `kube-${KUBE_VERSION}`, 'bin');
}

export async function startControlPlane(): Promise<ControlPlane> {
  const binDir = controlPlaneBinDir();
  for (const binary of ['etcd', 'kube-apiserver', 'kube-controller-manager', 'kubectl']) {
    if (!existsSync(path.join(binDir, binary))) {
      throw new Error(`${binary} is missing from ${binDir}: run "bash scripts/control-plane.sh" (scripts/test.sh does) to build the control plane`);
    }
  }
  const dir = mkdtempSync(path.join(os.tmpdir(), 'wagate-kube-'));
  const files = writeCredentials(dir);
  const children: ChildProcess[] = [];
  const logs: string[] = [];
  const start = (binary: string, args: string[]): void => {
    const child = spawn(path.join(binDir, binary), args, { stdio: ['ignore', 'ignore', 'pipe'] });
    child.stderr!.on('data', (chunk: Buffer) => {
      logs.push(`${binary}: ${chunk.toString()}`);
      if (logs.length > 200) logs.shift();
    });
    children.push(child);
  };
  let server = '';
  // A port found free can be taken by another test file before etcd or the API server binds it.
  for (let attempt = 1; ; attempt += 1) {
    const [etcdPort, peerPort, apiPort] = await Promise.all([freePort(), freePort(), freePort()]);
    const etcdUrl = `http://127.0.0.1:${etcdPort}`;
    start('etcd', [
      `--data-dir=${path.join(dir, `etcd-${attempt}`)}`,
      `--listen-client-urls=${etcdUrl}`,
      `--advertise-client-urls=${etcdUrl}`,
      `--listen-peer-urls=http://127.0.0.1:${peerPort}`,
      `--initial-advertise-peer-urls=http://127.0.0.1:${peerPort}`,
      `--initial-cluster=default=http://127.0.0.1:${peerPort}`,
      '--unsafe-no-fsync',
      '--log-level=error',
    ]);
    server = `https://127.0.0.1:${apiPort}`;
    start('kube-apiserver', [
      `--etcd-servers=${etcdUrl}`,
      '--bind-address=127.0.0.1',
      '--advertise-address=127.0.0.1',
      `--secure-port=${apiPort}`,
      // 127.0.0.1 is refused as an advertise address unless the endpoint reconciler is off.
      '--endpoint-reconciler-type=none',
      `--cert-dir=${path.join(dir, 'serving')}`,
      `--token-auth-file=${files.tokens}`,
      '--authorization-mode=RBAC',
      `--service-account-issuer=https://kubernetes.default.svc`,
      `--service-account-key-file=${files.saPublic}`,
      `--service-account-signing-key-file=${files.saPrivate}`,
      '--service-cluster-ip-range=10.96.0.0/16',
      // The controller manager reads this CA from the apiserver's authentication ConfigMap.
      `--requestheader-client-ca-file=${files.ca}`,
      '--enable-priority-and-fairness=false',
      '--v=0',
    ]);
    try {
      await waitForReady(server, files.adminToken, () => children.find((c) => c.exitCode !== null), logs);
      break;
    } catch (error) {
      await stopAll(children.splice(0));
      if (attempt < PORT_ATTEMPTS && logs.some((line) => line.includes('address already in use'))) {
        logs.length = 0;
        continue;
      }
      rmSync(dir, { recursive: true, force: true });
      throw error;
    }
  }
  const kubeconfig = writeKubeconfig(path.join(dir, 'admin.kubeconfig'), server, files.adminToken);
  start('kube-controller-manager', [
    `--kubeconfig=${kubeconfig}`,
    `--authentication-kubeconfig=${kubeconfig}`,
    `--authorization-kubeconfig=${kubeconfig}`,
    '--leader-elect=false',
    '--secure-port=0',
    `--service-account-private-key-file=${files.saPrivate}`,
    '--use-service-account-credentials=false',
    '--controllers=*',
    // It writes under /usr/libexec otherwise.
    `--flex-volume-plugin-dir=${path.join(dir, 'flex')}`,
    '--v=0',
  ]);
  const env: Record<string, string> = {
    KUBECONFIG: kubeconfig,
    KUBECACHEDIR: path.join(dir, 'kubecache'),
    HELM_CACHE_HOME: path.join(dir, 'helm', 'cache'),
    HELM_CONFIG_HOME: path.join(dir, 'helm', 'config'),
    HELM_DATA_HOME: path.join(dir, 'helm', 'data'),
  };
  let tokenConfigs = 0;
  const kubectl = (args: string[], options: { input?: string; kubeconfig?: string } = {}): string =>
    execFileSync(path.join(binDir, 'kubectl'), args, {
      env: { ...process.env, ...env, ...(options.kubeconfig ? { KUBECONFIG: options.kubeconfig } : {}) },
      input: options.input,
      encoding: 'utf8',
      stdio: ['pipe', 'pipe', 'pipe'],
    });
  return {
    server,
    kubeconfig,
    adminToken: files.adminToken,
    dir,
    binDir,
    env,
    kubectl,
    kubeconfigForToken(token, namespace) {
      tokenConfigs += 1;
      return writeKubeconfig(path.join(dir, `token-${tokenConfigs}.kubeconfig`), server, token, namespace);
    },
    async stop() {
      await stopAll(children);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

interface Credentials {
  tokens: string;
  adminToken: string;
  saPublic: string;
  saPrivate: string;
  ca: string;
}

function writeCredentials(dir: string): Credentials {
  const adminToken = randomBytes(24).toString('hex');
  const tokens = path.join(dir, 'tokens.csv');
  writeFileSync(tokens, `${adminToken},wagate-test-admin,wagate-test-admin,"system:masters"\n`);
  const { publicKey, privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const saPublic = path.join(dir, 'sa.pub');
  const saPrivate = path.join(dir, 'sa.key');
  writeFileSync(saPublic, publicKey.export({ type: 'spki', format: 'pem' }));
  writeFileSync(saPrivate, privateKey.export({ type: 'pkcs1', format: 'pem' }));
  const ca = path.join(dir, 'ca.crt');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', path.join(dir, 'ca.key'), '-out', ca, '-subj', '/CN=wagate-test-ca', '-days', '2'], { stdio: 'ignore' });
  mkdirSync(path.join(dir, 'flex'));
  return { tokens, adminToken, saPublic, saPrivate, ca };
}

function writeKubeconfig(file: string, server: string, token: string, namespace = 'default'): string {
  writeFileSync(
    file,
    [
      'apiVersion: v1',
      'kind: Config',
      'clusters:',
      '- name: test',
      '  cluster:',
      `    server: ${server}`,
      // The API server's certificate is self-signed and made fresh at each start.
      '    insecure-skip-tls-verify: true',
      'users:',
      '- name: test',
      '  user:',
      `    token: ${token}`,
      'contexts:',
      '- name: test',
      '  context:',
      '    cluster: test',
      '    user: test',
      `    namespace: ${namespace}`,
      'current-context: test',
      '',
    ].join('\n'),
  );
  return file;
}

async function waitForReady(server: string, token: string, exited: () => ChildProcess | undefined, logs: string[]): Promise<void> {
  const deadline = Date.now() + READY_TIMEOUT_MS;
  while (Date.now() < deadline) {
    const dead = exited();
    if (dead) throw new Error(`the control plane exited (${dead.spawnfile}, code ${dead.exitCode}):\n${logs.slice(-20).join('')}`);
    if ((await getStatus(`${server}/readyz`, token)) === 200) return;
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  throw new Error(`kube-apiserver was not ready within ${READY_TIMEOUT_MS} ms:\n${logs.slice(-20).join('')}`);
}

function getStatus(url: string, token: string): Promise<number> {
  return new Promise((resolve) => {
    const req = request(url, { headers: { authorization: `Bearer ${token}` }, rejectUnauthorized: false, timeout: 2000 }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(0));
    req.end();
  });
}

/** The plane and its data are thrown away, so there is nothing to shut down gracefully. */
async function stopAll(children: ChildProcess[]): Promise<void> {
  await Promise.all(
    children.reverse().map(
      (child) =>
        new Promise<void>((resolve) => {
          if (child.exitCode !== null || child.signalCode !== null) return resolve();
          child.once('exit', () => resolve());
          child.kill('SIGKILL');
        }),
    ),
  );
}

/** A control plane for the tests of one describe block: started before them, stopped after them. */
export function useControlPlane(): () => ControlPlane {
  let plane: ControlPlane | undefined;
  beforeAll(async () => {
    plane = await startControlPlane();
  }, 180_000);
  afterAll(async () => {
    await plane?.stop();
  }, 30_000);
  return () => {
    if (!plane) throw new Error('the control plane did not start: see the beforeAll error above');
    return plane;
  };
}
