import { existsSync, mkdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';

/**
 * CPU limits for the scale-out bench, as a pod's CPU limit would set them: each worker
 * process in its own cgroup with a CFS quota. These machines mount cgroup v1 with the cpu
 * controller at /sys/fs/cgroup/cpu (root may write it); cgroup v2 (a unified hierarchy with
 * cpu.max) is used where that is what is mounted.
 */
const V1_CPU_ROOT = '/sys/fs/cgroup/cpu';
const V2_ROOT = '/sys/fs/cgroup';
const CFS_PERIOD_US = 100_000;

export interface CpuLimitedGroup {
  path: string;
  version: 1 | 2;
  /** The file a process writes its pid to, to join the group. */
  procsFile: string;
  /** Changes the limit; null lifts it (the scale-out's warm-up runs unlimited). */
  setCores(cores: number | null): void;
  /** Removes the group; its processes must have exited. */
  remove(): void;
}

export function cgroupVersion(): 1 | 2 | null {
  if (existsSync(path.join(V1_CPU_ROOT, 'cpu.cfs_quota_us'))) return 1;
  if (v2HasController('cpu')) return 2;
  return null;
}

/** True where a unified (v2) hierarchy is mounted with this controller. */
function v2HasController(controller: string): boolean {
  const controllers = path.join(V2_ROOT, 'cgroup.controllers');
  return existsSync(controllers) && readFileSync(controllers, 'utf8').split(/\s+/).includes(controller);
}

/** A new cgroup allowed `cores` of CPU time (0.25 = a quarter of one core, per CFS period). */
export function createCpuLimitedGroup(name: string, cores: number): CpuLimitedGroup {
  const version = cgroupVersion();
  if (version === null) throw new Error(`no writable cpu cgroup controller at ${V1_CPU_ROOT} (v1) or ${V2_ROOT} (v2): the scale-out bench needs root and cgroups`);
  const dir = path.join(version === 1 ? V1_CPU_ROOT : V2_ROOT, name);
  mkdirSync(dir);
  const setCores = (limit: number | null) => {
    const quotaUs = limit === null ? null : Math.round(limit * CFS_PERIOD_US);
    if (version === 1) {
      writeFileSync(path.join(dir, 'cpu.cfs_period_us'), String(CFS_PERIOD_US));
      writeFileSync(path.join(dir, 'cpu.cfs_quota_us'), String(quotaUs ?? -1));
    } else {
      writeFileSync(path.join(dir, 'cpu.max'), `${quotaUs ?? 'max'} ${CFS_PERIOD_US}`);
    }
  };
  setCores(cores);
  return {
    path: dir,
    version,
    procsFile: path.join(dir, 'cgroup.procs'),
    setCores,
    remove() {
      try {
        rmdirSync(dir);
      } catch {
        // Still holds a process that has not been reaped; the kernel frees it with the last one.
      }
    },
  };
}

/** CFS enforcement periods so far in which the group ran, and how many of them its quota cut short. */
export interface Throttling {
  periods: number;
  throttled: number;
}

export function throttling(group: CpuLimitedGroup): Throttling {
  const stat = readFileSync(path.join(group.path, 'cpu.stat'), 'utf8');
  const count = (name: string) => Number(new RegExp(`^${name} (\\d+)$`, 'm').exec(stat)?.[1] ?? NaN);
  return { periods: count('nr_periods'), throttled: count('nr_throttled') };
}

/**
 * The share of the periods between two readings in which the quota held the group back: near
 * 1 means the process was CPU-bound all along. Periods, not cgroup v1's throttled_time, which
 * adds up per CPU and so can pass the wall-clock time on a machine of several cores.
 */
export function throttledShare(before: Throttling, after: Throttling): number {
  const periods = after.periods - before.periods;
  return periods > 0 ? (after.throttled - before.throttled) / periods : NaN;
}

const V1_MEMORY_ROOT = '/sys/fs/cgroup/memory';

export interface MemoryLimitedGroup {
  /** The file a process writes its pid to, to join the group. */
  procsFile: string;
  /** Removes the group; its processes must have exited. */
  remove(): void;
}

/**
 * A memory limit as a pod's would set it. It matters before the process starts: Node sizes
 * V8's heap (and with it the young generation, most of an idle-to-busy ingest's RSS) from
 * the memory it may use, so a process on a large machine without a limit grows far beyond
 * what the same process does in a 512 MiB pod. Null where no memory controller can be written.
 */
export function createMemoryLimitedGroup(name: string, mib: number, cpu?: CpuLimitedGroup): MemoryLimitedGroup | null {
  const bytes = String(mib * 1024 * 1024);
  // Under cgroup v2 a process is in one group of the unified hierarchy: one of its own for the
  // memory limit, beside the CPU one, would take it out of the CPU group it joins (or the other
  // way round, whichever write came last). The CPU group carries the memory limit too.
  if (cpu?.version === 2) {
    if (!v2HasController('memory')) return null;
    try {
      writeFileSync(path.join(cpu.path, 'memory.max'), bytes);
    } catch {
      return null;
    }
    return { procsFile: cpu.procsFile, remove: () => undefined };
  }
  const v1 = existsSync(path.join(V1_MEMORY_ROOT, 'memory.limit_in_bytes'));
  if (!v1 && !v2HasController('memory')) return null;
  const dir = path.join(v1 ? V1_MEMORY_ROOT : V2_ROOT, name);
  try {
    mkdirSync(dir);
    writeFileSync(path.join(dir, v1 ? 'memory.limit_in_bytes' : 'memory.max'), bytes);
  } catch {
    return null;
  }
  return {
    procsFile: path.join(dir, 'cgroup.procs'),
    remove() {
      try {
        rmdirSync(dir);
      } catch {
        // Still holds a process that has not been reaped; the kernel frees it with the last one.
      }
    },
  };
}
