import { existsSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

/**
 * The cores the bench's processes may use: the machine's, or fewer under a CPU quota on the
 * bench's own cgroup or one above it (a container's limit). os.cpus() counts the host's cores,
 * so with 2 cores allowed on a 16-core host the ceiling came out eight times too high.
 */
export function effectiveCores(): number {
  const quota = cgroupCpuQuota(readFileOrNull('/proc/self/cgroup') ?? '', readFileOrNull);
  return quota === null ? os.availableParallelism() : Math.min(os.availableParallelism(), quota);
}

function readFileOrNull(file: string): string | null {
  return existsSync(file) ? readFileSync(file, 'utf8') : null;
}

/**
 * The smallest CPU quota, in cores, of the cgroup named in `/proc/self/cgroup` and its
 * ancestors; null when none is set. cgroup v2's `cpu.max` ("max 100000" or "200000 100000"),
 * else v1's `cpu.cfs_quota_us` (-1: none) over `cpu.cfs_period_us` under the cpu controller.
 */
export function cgroupCpuQuota(selfCgroup: string, read: (file: string) => string | null): number | null {
  const lines = selfCgroup.split('\n').map((line) => line.split(':')).filter((parts) => parts.length >= 3);
  const v2 = lines.find(([id, controllers]) => id === '0' && controllers === '');
  const v1 = lines.find(([, controllers]) => controllers!.split(',').includes('cpu'));
  const quotas: number[] = [];
  for (const dir of ancestors(v1 ? v1.slice(2).join(':') : v2?.slice(2).join(':') ?? '/')) {
    if (v1) {
      const quota = Number(read(path.join('/sys/fs/cgroup/cpu', dir, 'cpu.cfs_quota_us'))?.trim());
      const period = Number(read(path.join('/sys/fs/cgroup/cpu', dir, 'cpu.cfs_period_us'))?.trim());
      if (quota > 0 && period > 0) quotas.push(quota / period);
    } else {
      const [quota, period] = (read(path.join('/sys/fs/cgroup', dir, 'cpu.max')) ?? '').trim().split(/\s+/);
      if (quota !== 'max' && Number(quota) > 0 && Number(period) > 0) quotas.push(Number(quota) / Number(period));
    }
  }
  return quotas.length > 0 ? Math.min(...quotas) : null;
}

/** '/a/b' → ['/a/b', '/a', '/']. */
function ancestors(dir: string): string[] {
  const parts = dir.split('/').filter(Boolean);
  return parts.map((_, index) => `/${parts.slice(0, parts.length - index).join('/')}`).concat('/');
}
