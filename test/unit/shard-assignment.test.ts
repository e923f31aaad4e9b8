import { assignShards } from '../../src/worker/shard-assignment';

const counts = (owners: string[]) => owners.reduce((map, owner) => map.set(owner, (map.get(owner) ?? 0) + 1), new Map<string, number>());
const members = (n: number) => Array.from({ length: n }, (_, i) => `worker-${i}-${(i * 7919).toString(36)}`);

describe('shard assignment', () => {
  it.each([
    [8, 2], [8, 3], [32, 3], [32, 5], [10, 4], [32, 32], [4, 1],
  ])('gives every one of %i shards to one of %i workers, at most ceil(S/N) each and within one of each other', (shards, n) => {
    const owners = assignShards(shards, members(n));
    expect(owners).toHaveLength(shards);
    const perMember = [...counts(owners).values()];
    expect(perMember).toHaveLength(Math.min(n, shards));
    expect(Math.max(...perMember)).toBeLessThanOrEqual(Math.ceil(shards / n));
    expect(Math.max(...perMember) - Math.min(...perMember)).toBeLessThanOrEqual(1);
  });

  it('leaves workers beyond the shard count without a shard, standing by', () => {
    const owners = assignShards(3, members(5));
    expect(new Set(owners).size).toBe(3);
  });

  it('gives the same answer whatever order the members are listed in, and ignores repeats', () => {
    const listed = members(4);
    const shuffled = [listed[2]!, listed[0]!, listed[3]!, listed[1]!, listed[0]!];
    expect(assignShards(16, shuffled)).toEqual(assignShards(16, listed));
  });

  it('moves only some shards when a worker joins, most of them to the newcomer', () => {
    const before = assignShards(32, members(3));
    const after = assignShards(32, members(4));
    const moved = before.map((owner, shard) => owner !== after[shard]).filter(Boolean).length;
    const toNewcomer = after.filter((owner) => owner === members(4)[3]).length;
    expect(toNewcomer).toBe(8);
    // 8 must move to the newcomer; an assignment by shard index modulo N would move 24.
    expect(moved).toBeLessThanOrEqual(16);
  });

  it('assigns nothing without live members', () => {
    expect(assignShards(8, [])).toEqual([]);
  });
});
