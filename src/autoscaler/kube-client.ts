/**
 * The only file that loads @kubernetes/client-node.
 *
 * Why a plain `import`: the package is ESM-only since 1.0, and this project compiles to
 * CommonJS, so tsc turns this import into `require()`. Node 24 loads an ES module through
 * `require()` natively (require(esm), on by default since Node 22.12 and 20.19) as long as its graph has
 * no top-level await, which holds for client-node. That keeps full static types, a synchronous
 * load and no tricks: the usual alternative, an `import()` hidden from tsc in `new Function`, gives
 * up type checking of the call and turns every use into a promise. Jest's own module system does
 * not load ES modules without --experimental-vm-modules, so the tests run this code in the
 * `wagate autoscaler` process, against a real API server, rather than inside Jest.
 *
 * Why 2.0.1, pinned exactly in package.json: it does its HTTP through undici 8, which declares
 * Node >= 22.19 and builds its decompressors from node:zlib's zstd support. That is why it
 * crashed on Node 20 (no zstd in zlib there) and why 1.3.0 was the fallback; on the Node 24
 * this project pins, 2.0.1 works against kube-apiserver v1.37 (test/kube/autoscaler.test.ts).
 * The generated API changes shape between majors, hence the exact pin.
 */
import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import path from 'node:path';
import {
  AppsV1Api,
  CoordinationV1Api,
  CoreV1Api,
  KubeConfig,
  Observable,
  PatchStrategy,
  setHeaderOptions,
  type ConfigurationOptions,
  type RequestContext,
  type ResponseContext,
  type V1Lease,
} from '@kubernetes/client-node';
import { WagateError } from '../errors';

/** Where Kubernetes mounts the pod's ServiceAccount; its namespace file names the pod's namespace. */
const SERVICE_ACCOUNT_NAMESPACE_FILE = '/var/run/secrets/kubernetes.io/serviceaccount/namespace';

export interface KubeClients {
  apps: AppsV1Api;
  core: CoreV1Api;
  coordination: CoordinationV1Api;
  /** The namespace to use when AUTOSCALER_NAMESPACE is not set. */
  defaultNamespace: string;
  server: string;
}

/** Inside a pod: the ServiceAccount. Outside: KUBECONFIG or ~/.kube/config (client-node's own lookup). */
export function createKubeClients(): KubeClients {
  if (!process.env.KUBERNETES_SERVICE_HOST && !process.env.KUBECONFIG && !existsSync(path.join(homedir(), '.kube', 'config'))) {
    // client-node would otherwise fall back to http://localhost:8080 and fail at every try.
    throw new WagateError('CONFIG_INVALID', 'no Kubernetes cluster to talk to: not in a pod, KUBECONFIG is not set and ~/.kube/config does not exist');
  }
  const config = new KubeConfig();
  config.loadFromDefault();
  const cluster = config.getCurrentCluster();
  if (!cluster) throw new WagateError('CONFIG_INVALID', 'the kubeconfig names no current cluster: set its current-context');
  return {
    apps: config.makeApiClient(AppsV1Api),
    core: config.makeApiClient(CoreV1Api),
    coordination: config.makeApiClient(CoordinationV1Api),
    defaultNamespace: podNamespace() ?? contextNamespace(config) ?? 'default',
    server: cluster.server,
  };
}

function podNamespace(): string | undefined {
  try {
    return readFileSync(SERVICE_ACCOUNT_NAMESPACE_FILE, 'utf8').trim() || undefined;
  } catch {
    return undefined;
  }
}

function contextNamespace(config: KubeConfig): string | undefined {
  return config.getContextObject(config.getCurrentContext())?.namespace;
}

/** The request options for a JSON merge patch (client-node sends a JSON patch otherwise). */
export const MERGE_PATCH = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);

/**
 * Request options that abort the call when `signal` does: client-node hands the request's
 * signal to fetch, but its generated calls take no signal of their own, only middleware.
 */
export function abortedBy(signal: AbortSignal | undefined, options?: ConfigurationOptions): ConfigurationOptions | undefined {
  if (!signal) return options;
  const middleware = {
    pre(request: RequestContext) {
      request.setSignal(signal);
      return new Observable(Promise.resolve(request));
    },
    post: (response: ResponseContext) => new Observable(Promise.resolve(response)),
  };
  return { ...options, middleware: [...(options?.middleware ?? []), middleware], middlewareMergeStrategy: 'append' };
}

export type { V1Lease };
