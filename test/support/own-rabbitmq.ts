import { execFile } from 'node:child_process';
import { chown, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { freePort } from './free-port';

const run = promisify(execFile);

/** Where Debian's package puts the server script (the rabbitmq-server on PATH is a wrapper that drops our environment). */
const SERVER_SCRIPT = '/usr/lib/rabbitmq/bin/rabbitmq-server';
const CTL_SCRIPT = '/usr/lib/rabbitmq/bin/rabbitmqctl';
const STARTUP_TIMEOUT_SECONDS = 60;

/**
 * A RabbitMQ node of a test file's own, beside the shared one: for what acts on a whole node
 * (a memory alarm blocks every publishing connection of it) and so cannot be done to the
 * broker that other test files are using at the same time. Same installation, its own ports,
 * data directory and node name; no plugins.
 */
export interface OwnRabbitmq {
  url: string;
  node: string;
  /** Raises (or clears) a memory alarm: the node blocks every connection that publishes. */
  setMemoryAlarm(on: boolean): Promise<void>;
  stop(): Promise<void>;
}

/** `config`: further lines of the node's rabbitmq.conf (a lower max_message_size, say). */
export async function startOwnRabbitmq(config = ''): Promise<OwnRabbitmq> {
  const [amqpPort, distPort] = [await freePort(), await freePort()];
  const node = `wagate-test-${process.pid}-${amqpPort}@localhost`;
  const dir = await mkdtemp(join(tmpdir(), 'wagate-rabbitmq-'));
  await writeFile(join(dir, 'rabbitmq.conf'), `listeners.tcp.local = 127.0.0.1:${amqpPort}\nloopback_users = none\n${config}`);
  await writeFile(join(dir, 'enabled_plugins'), '[].\n');
  const env = {
    RABBITMQ_NODENAME: node,
    RABBITMQ_DIST_PORT: String(distPort),
    RABBITMQ_MNESIA_BASE: join(dir, 'mnesia'),
    RABBITMQ_LOG_BASE: join(dir, 'log'),
    RABBITMQ_CONFIG_FILE: join(dir, 'rabbitmq.conf'),
    RABBITMQ_ENABLED_PLUGINS_FILE: join(dir, 'enabled_plugins'),
    // For the fallback when rabbitmqctl cannot stop it: a node left running outlives the test run.
    RABBITMQ_PID_FILE: join(dir, 'node.pid'),
  };
  const stopNode = async () => {
    const stopped = await rabbitmqctl(node, 'stop').then(() => true, () => false);
    if (!stopped) await killByPidFile(join(dir, 'node.pid'));
  };
  try {
    await startNode(dir, env);
    await untilRegistered(node);
    await rabbitmqctl(node, 'await_startup', '--timeout', String(STARTUP_TIMEOUT_SECONDS));
  } catch (error) {
    // The directory stays, for its logs.
    await stopNode();
    throw new Error(`could not start a RabbitMQ node of this test's own (${node}, logs in ${dir}/log): ${(error as Error).message}`);
  }
  return {
    url: `amqp://guest:guest@127.0.0.1:${amqpPort}`,
    node,
    async setMemoryAlarm(on) {
      // A watermark far below what an idle node uses raises the alarm at once; RabbitMQ's default clears it.
      await rabbitmqctl(node, 'set_vm_memory_high_watermark', on ? '0.00001' : '0.4');
    },
    async stop() {
      await stopNode();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** The server runs as the rabbitmq user, as the package's own node does, so it shares that user's Erlang cookie with rabbitmqctl. */
async function startNode(dir: string, env: Record<string, string>): Promise<void> {
  if (process.getuid?.() !== 0) {
    await run(SERVER_SCRIPT, ['-detached'], { env: { ...process.env, ...env } });
    return;
  }
  const { stdout } = await run('id', ['-u', 'rabbitmq']);
  const { stdout: group } = await run('id', ['-g', 'rabbitmq']);
  await chown(dir, Number(stdout), Number(group));
  const assignments = Object.entries(env).map(([name, value]) => `${name}='${value}'`).join(' ');
  await run('su', ['rabbitmq', '-s', '/bin/sh', '-c', `cd /var/lib/rabbitmq && HOME=/var/lib/rabbitmq ${assignments} exec ${SERVER_SCRIPT} -detached`]);
}

/** A detached node takes a moment to register with epmd; until then await_startup answers "not running". */
async function untilRegistered(node: string): Promise<void> {
  const deadline = Date.now() + STARTUP_TIMEOUT_SECONDS * 1000;
  for (;;) {
    const { stdout } = await run('epmd', ['-names']).catch(() => ({ stdout: '' }));
    if (stdout.includes(`name ${node.split('@')[0]} `)) return;
    if (Date.now() > deadline) throw new Error(`the node did not register with epmd within ${STARTUP_TIMEOUT_SECONDS} s`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

/**
 * As root, the wrapper on PATH, which runs it as the rabbitmq user with that user's Erlang
 * cookie; as anyone else the script itself (the wrapper refuses users other than root and
 * rabbitmq), with the cookie of the user that started the node.
 */
async function rabbitmqctl(node: string, ...args: string[]): Promise<void> {
  const command = process.getuid?.() === 0 ? 'rabbitmqctl' : CTL_SCRIPT;
  await run(command, ['-n', node, ...args], { timeout: (STARTUP_TIMEOUT_SECONDS + 10) * 1000 });
}

async function killByPidFile(pidFile: string): Promise<void> {
  const pid = Number((await readFile(pidFile, 'utf8').catch(() => '')).trim());
  if (!Number.isInteger(pid) || pid <= 0) return;
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // Already gone.
  }
}

