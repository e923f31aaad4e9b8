import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { waitFor } from './wait';
import { freePort } from './free-port';

/** The version scripts/toxiproxy.sh builds; the binary is looked up there unless the test command says where. */
const TOXIPROXY_VERSION = 'v2.12.0';
const API_START_TIMEOUT_MS = 15_000;

export type ToxicType = 'latency' | 'bandwidth' | 'reset_peer' | 'timeout' | 'slow_close' | 'limit_data';

export interface Toxic {
  type: ToxicType;
  /** Which way the bytes are hurt: from the service (downstream) or to it (upstream). */
  stream?: 'upstream' | 'downstream';
  attributes: Record<string, number>;
}

export interface ToxicProxy {
  name: string;
  /** The loopback port wagate connects to instead of the service's. */
  port: number;
  addToxic(name: string, toxic: Toxic): Promise<void>;
  removeToxic(name: string): Promise<void>;
  /** Disabled: every open connection is closed and new ones are refused (a full outage). */
  setEnabled(enabled: boolean): Promise<void>;
}

export interface Toxiproxy {
  proxy(name: string, upstreamPort: number, upstreamHost?: string): Promise<ToxicProxy>;
  close(): Promise<void>;
}

function serverBinary(): string {
  const cache = process.env.WAGATE_CACHE_DIR ?? path.join(process.env.XDG_CACHE_HOME ?? path.join(os.homedir(), '.cache'), 'wagate');
  const binary = process.env.WAGATE_TOXIPROXY_SERVER ?? path.join(cache, `toxiproxy-${TOXIPROXY_VERSION}`, 'bin', 'toxiproxy-server');
  if (!existsSync(binary)) throw new Error(`${binary} is missing: run "bash scripts/toxiproxy.sh" (scripts/test.sh builds it)`);
  return binary;
}

/** Tries with another port when the one picked was taken before the server bound it. */
const START_ATTEMPTS = 3;

/** Starts a Toxiproxy server of this test file's own on loopback and drives it through its HTTP API. */
export async function startToxiproxy(): Promise<Toxiproxy> {
  for (let attempt = 1; ; attempt += 1) {
    try {
      return await startOnFreePort();
    } catch (error) {
      if (attempt >= START_ATTEMPTS) throw error;
    }
  }
}

async function startOnFreePort(): Promise<Toxiproxy> {
  const apiPort = await freePort();
  const child: ChildProcess = spawn(serverBinary(), ['-host', '127.0.0.1', '-port', String(apiPort)], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => (stderr = (stderr + chunk.toString()).slice(-4000)));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const api = `http://127.0.0.1:${apiPort}`;

  async function call(method: string, route: string, body?: unknown): Promise<Record<string, unknown>> {
    const response = await fetch(`${api}${route}`, {
      method,
      headers: body === undefined ? {} : { 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await response.text();
    if (!response.ok) throw new Error(`toxiproxy ${method} ${route}: ${response.status} ${text}`);
    return text ? (JSON.parse(text) as Record<string, unknown>) : {};
  }

  // Ours must be the one answering: another file's server may hold the port if ours could not bind it.
  const answering = waitFor(`toxiproxy API on ${api}`, () => call('GET', '/version').then(() => true, () => false), API_START_TIMEOUT_MS).then(() => true, () => false);
  const up = (await Promise.race([answering, exited.then(() => false)])) && child.exitCode === null;
  if (!up) {
    if (child.exitCode === null) child.kill('SIGKILL');
    await exited;
    throw new Error(`toxiproxy did not start on ${api}: ${stderr.trim() || 'no answer'}`);
  }
  return {
    async proxy(name, upstreamPort, upstreamHost = '127.0.0.1') {
      const created = await call('POST', '/proxies', { name, listen: '127.0.0.1:0', upstream: `${upstreamHost}:${upstreamPort}`, enabled: true });
      const port = Number(String(created.listen).split(':').pop());
      return {
        name,
        port,
        async addToxic(toxicName, toxic) {
          await call('POST', `/proxies/${name}/toxics`, { name: toxicName, stream: 'downstream', toxicity: 1, ...toxic });
        },
        async removeToxic(toxicName) {
          await call('DELETE', `/proxies/${name}/toxics/${toxicName}`);
        },
        async setEnabled(enabled) {
          await call('POST', `/proxies/${name}`, { enabled });
        },
      };
    },
    async close() {
      if (child.exitCode === null) child.kill('SIGTERM');
      await exited;
    },
  };
}
