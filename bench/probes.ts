import { readdirSync, readFileSync } from 'node:fs';

/** Linux reports process CPU in clock ticks of 1/100 s (USER_HZ) on every mainstream build. */
const TICKS_PER_SECOND = 100;
const RSS_SAMPLE_MS = 100;

/** Peak resident memory of one process over a phase, in MiB, sampled every RSS_SAMPLE_MS. */
export function sampleRss(pid: number): { stop(): number } {
  let peakKib = readStatusKib(pid, 'VmRSS');
  const timer = setInterval(() => (peakKib = Math.max(peakKib, readStatusKib(pid, 'VmRSS'))), RSS_SAMPLE_MS);
  return {
    stop() {
      clearInterval(timer);
      return Math.max(peakKib, readStatusKib(pid, 'VmRSS')) / 1024;
    },
  };
}

/** The kernel's own high-water mark of resident memory over the process's life, in MiB. */
export function lifetimePeakRssMib(pid: number): number {
  return readStatusKib(pid, 'VmHWM') / 1024;
}

function readStatusKib(pid: number, field: string): number {
  try {
    const match = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return match ? Number(match[1]) : 0;
  } catch {
    return 0;
  }
}

/** Average CPU cores used during a phase by each party; "other" is whatever else ran on the machine. */
export interface CpuShare {
  server: number;
  postgres: number;
  /** Part of postgres: the backends connected to the database given to measureCpu, if one was. */
  postgresDatabase?: number;
  rabbitmq: number;
  loadGenerator: number;
  other: number;
  machineCores: number;
}

interface CpuSnapshot {
  atMs: number;
  server: number;
  postgres: number;
  postgresDatabase: number;
  rabbitmq: number;
  self: number;
  machineBusy: number;
}

/**
 * Counts CPU from /proc at the start and end of a phase. Postgres is every process named
 * "postgres" (one per connection), RabbitMQ is the Erlang VM; both are machine-wide, so a
 * neighbour using them shows up here, and in "other" when it uses anything else.
 */
export function measureCpu(serverPid: number, database?: string): { stop(): CpuShare } {
  const start = snapshot(serverPid, database);
  return {
    stop() {
      const end = snapshot(serverPid, database);
      const seconds = (end.atMs - start.atMs) / 1000;
      const cores = (key: keyof CpuSnapshot) => (end[key] - start[key]) / TICKS_PER_SECOND / seconds;
      const share = { server: cores('server'), postgres: cores('postgres'), rabbitmq: cores('rabbitmq'), loadGenerator: cores('self') };
      const known = share.server + share.postgres + share.rabbitmq + share.loadGenerator;
      return {
        ...share,
        ...(database ? { postgresDatabase: cores('postgresDatabase') } : {}),
        other: Math.max(0, cores('machineBusy') - known),
        machineCores: cores('machineBusy'),
      };
    },
  };
}

/**
 * A backend's title is "postgres: <cluster>: <user> <database> <client> <state>", so the
 * database name (preceded and followed by a space) picks out the backends serving it.
 * Backends that exit during the phase take their ticks with them; the bench's do not.
 */
function snapshot(serverPid: number, database?: string): CpuSnapshot {
  let postgres = 0;
  let postgresDatabase = 0;
  let rabbitmq = 0;
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = readStat(Number(entry));
    if (stat?.comm === 'postgres') {
      postgres += stat.ticks;
      if (database && readCmdline(Number(entry)).includes(` ${database} `)) postgresDatabase += stat.ticks;
    } else if (stat?.comm === 'beam.smp') rabbitmq += stat.ticks;
  }
  return {
    atMs: performance.now(),
    server: readStat(serverPid)?.ticks ?? 0,
    postgres,
    postgresDatabase,
    rabbitmq,
    self: readStat(process.pid)?.ticks ?? 0,
    machineBusy: readMachineBusyTicks(),
  };
}

function readCmdline(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8');
  } catch {
    return '';
  }
}

/** CPU time a process has used so far (user and system, all its threads), or null if it is gone. */
export function processCpuSeconds(pid: number): number | null {
  const stat = readStat(pid);
  return stat === null ? null : stat.ticks / TICKS_PER_SECOND;
}

/** utime + stime of a process (fields 14 and 15 of /proc/<pid>/stat), or null if it is gone. */
function readStat(pid: number): { comm: string; ticks: number } | null {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // comm is parenthesised and may contain spaces; the numeric fields follow the last ')'.
    const close = text.lastIndexOf(')');
    const fields = text.slice(close + 2).split(' ');
    return { comm: text.slice(text.indexOf('(') + 1, close), ticks: Number(fields[11]) + Number(fields[12]) };
  } catch {
    return null;
  }
}

/** All CPU time except idle and iowait, summed over every core, from the first line of /proc/stat. */
function readMachineBusyTicks(): number {
  const [, ...values] = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0]!.trim().split(/\s+/);
  const [user, nice, system, , , irq, softirq, steal] = values.map(Number);
  return user! + nice! + system! + irq! + softirq! + steal!;
}
