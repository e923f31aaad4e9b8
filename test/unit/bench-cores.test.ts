import { cgroupCpuQuota } from '../../bench/cores';

const files = (entries: Record<string, string>) => (file: string) => entries[file] ?? null;

describe('the cores the bench may use under a CPU quota', () => {
  it('reads cgroup v2\'s cpu.max of the bench\'s group and its ancestors, the smallest winning', () => {
    const self = '0::/kubepods/pod1/bench\n';
    expect(cgroupCpuQuota(self, files({ '/sys/fs/cgroup/kubepods/pod1/bench/cpu.max': 'max 100000\n', '/sys/fs/cgroup/kubepods/pod1/cpu.max': '200000 100000\n' }))).toBe(2);
    expect(cgroupCpuQuota(self, files({ '/sys/fs/cgroup/kubepods/pod1/bench/cpu.max': '50000 100000', '/sys/fs/cgroup/kubepods/pod1/cpu.max': '200000 100000' }))).toBe(0.5);
  });

  it('reads cgroup v1\'s cfs quota over its period under the cpu controller, -1 meaning none', () => {
    const self = '4:memory:/other\n1:cpu,cpuacct:/docker/abc\n0::/\n';
    expect(cgroupCpuQuota(self, files({ '/sys/fs/cgroup/cpu/docker/abc/cpu.cfs_quota_us': '150000', '/sys/fs/cgroup/cpu/docker/abc/cpu.cfs_period_us': '100000' }))).toBe(1.5);
    expect(cgroupCpuQuota(self, files({ '/sys/fs/cgroup/cpu/docker/abc/cpu.cfs_quota_us': '-1', '/sys/fs/cgroup/cpu/docker/abc/cpu.cfs_period_us': '100000' }))).toBeNull();
  });

  it('is none when no group sets a quota, or nothing can be read', () => {
    expect(cgroupCpuQuota('0::/\n', files({ '/sys/fs/cgroup/cpu.max': 'max 100000' }))).toBeNull();
    expect(cgroupCpuQuota('', files({}))).toBeNull();
  });
});
