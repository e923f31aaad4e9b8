import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

const run = promisify(execFile);
/** rabbitmqctl starts an Erlang VM per call: seconds on a busy machine. */
const RABBITMQCTL_TIMEOUT_MS = 60_000;

async function rabbitmqctl(args: string[]): Promise<string> {
  const { stdout } = await run('rabbitmqctl', ['-q', ...args], { timeout: RABBITMQCTL_TIMEOUT_MS });
  return stdout;
}

/** The client-provided names (`connection_name`) of every connection the broker holds now. */
export async function connectionNames(): Promise<string[]> {
  const out = await rabbitmqctl(['list_connections', '--no-table-headers', 'client_properties']);
  return [...out.matchAll(/\{"connection_name","((?:[^"\\]|\\.)*)"\}/g)].map((match) => match[1]!);
}

/**
 * An Erlang list of the broker-side reader processes of the connections with this client name.
 * Other test files open and close connections meanwhile: one still in its handshake has no
 * client properties yet (`none`), and one that just closed makes rabbit_reader:info exit.
 * Neither is the one asked for, so both are skipped rather than failing the whole call.
 */
function readersNamed(name: string): string {
  const literal = `<<"${name.replace(/["\\]/g, '')}">>`;
  return `[P || P <- rabbit_networking:connections(), begin
    Props = (catch proplists:get_value(client_properties, rabbit_reader:info(P, [client_properties]))),
    is_list(Props) andalso lists:keyfind(<<"connection_name">>, 1, Props) =:= {<<"connection_name">>, longstr, ${literal}} end]`;
}

/**
 * Suspends the broker's reader of the named connections, as a memory alarm blocks a
 * publishing connection: the broker reads nothing more from it, so its publishes get no
 * confirm until resumeReaders. Returns the suspended readers (pids local to the broker).
 */
export async function suspendConnection(name: string): Promise<string[]> {
  const out = await rabbitmqctl(['eval', `[begin ok = sys:suspend(P), pid_to_list(P) end || P <- ${readersNamed(name)}].`]);
  return [...out.matchAll(/"(<[0-9.]+>)"/g)].map((match) => match[1]!);
}

export async function resumeReaders(pids: string[]): Promise<void> {
  if (pids.length === 0) return;
  await rabbitmqctl(['eval', `[sys:resume(list_to_pid(P)) || P <- [${pids.map((pid) => `"${pid}"`).join(',')}]].`]);
}

/** Closes the named connections from the broker's side, as an operator or a failing node would. */
export async function closeConnection(name: string): Promise<number> {
  const out = await rabbitmqctl(['eval', `length([rabbit_networking:close_connection(P, "closed by a test") || P <- ${readersNamed(name)}]).`]);
  return Number(out.trim());
}

/** The prefetch count of every consumer of each named queue, as the broker holds it now. */
export async function consumerPrefetches(queues: string[]): Promise<Map<string, number[]>> {
  const out = await rabbitmqctl(['list_consumers', '--no-table-headers', 'queue_name', 'prefetch_count']);
  const byQueue = new Map<string, number[]>(queues.map((queue) => [queue, []]));
  for (const line of out.split('\n')) {
    const [queue, prefetch] = line.trim().split(/\s+/);
    byQueue.get(queue ?? '')?.push(Number(prefetch));
  }
  return byQueue;
}
