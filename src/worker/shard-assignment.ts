import { createHash } from 'node:crypto';

/**
 * Which live worker should hold each shard: an array indexed by shard, empty without members.
 *
 * Rendezvous hashing with fixed quotas. The members are sorted, so every worker that sees
 * the same membership computes the same answer. Each gets floor(S/N) shards, and the first
 * S mod N members in sorted order one more, so no worker holds more than ceil(S/N) and any
 * two differ by at most one. Each shard, in order, goes to the member with the highest hash
 * score for it that still has room. Plain rendezvous hashing is balanced only on average
 * (8 shards over 3 workers give one of them 4 or more in most memberships); the quotas make
 * it exact, while the hash keeps most shards where they were when a member joins or leaves,
 * so that few hand-overs happen.
 */
export function assignShards(shardCount: number, members: readonly string[]): string[] {
  const sorted = [...new Set(members)].sort(compareCodeUnits);
  if (sorted.length === 0) return [];
  const base = Math.floor(shardCount / sorted.length);
  const extra = shardCount % sorted.length;
  const room = new Map(sorted.map((member, index) => [member, base + (index < extra ? 1 : 0)]));
  const owners: string[] = [];
  for (let shard = 0; shard < shardCount; shard += 1) {
    const ranked = sorted
      .map((member) => ({ member, score: scoreOf(shard, member) }))
      .sort((a, b) => b.score - a.score || compareCodeUnits(a.member, b.member));
    const chosen = ranked.find(({ member }) => room.get(member)! > 0)!.member;
    room.set(chosen, room.get(chosen)! - 1);
    owners.push(chosen);
  }
  return owners;
}

function scoreOf(shard: number, member: string): number {
  return createHash('sha1').update(`${shard}\u0000${member}`).digest().readUInt32BE(0);
}

/** Locale-independent, so that every worker sorts the same way whatever its environment. */
function compareCodeUnits(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
