import { isIP, isIPv4, isIPv6 } from 'node:net';

/**
 * The part of a client address that one client controls. An IPv6 client is usually given a
 * whole /64 and can pick any of its 2^64 addresses, so counting per address would give it a
 * fresh allowance per request, and let it push every other client out of the table: the /64
 * is the client. An IPv4 address, also when IPv6-mapped (::ffff:192.0.2.1), is its own key.
 */
export function rateLimitKey(address: string): string {
  const bare = withoutPort(address);
  if (!isIPv6(bare)) return bare;
  const hextets = expandIPv6(bare.split('%')[0]!);
  if (hextets.slice(0, 6).join(':') === '0:0:0:0:0:ffff') return ipv4Of(hextets);
  return `${hextets.slice(0, 4).join(':')}::/64`;
}

/**
 * The address without a port that a trusted proxy wrote after it: Azure's Application Gateway
 * and IIS's ARR forward "203.0.113.5:52372", which proxy-addr hands on as the client, so each
 * new connection would have been a new client with a fresh allowance.
 */
function withoutPort(address: string): string {
  if (isIP(address)) return address;
  const bracketed = /^\[([^\]]+)\](?::\d+)?$/.exec(address)?.[1];
  if (bracketed !== undefined && isIPv6(bracketed)) return bracketed;
  const ipv4 = /^([0-9.]+):\d+$/.exec(address)?.[1];
  return ipv4 !== undefined && isIPv4(ipv4) ? ipv4 : address;
}

/** The eight groups as numbers in hex without leading zeros; the address is already known to be IPv6. */
function expandIPv6(address: string): string[] {
  const [head, tail] = address.includes('::') ? address.split('::') : [address, undefined];
  const groups = (part: string | undefined) => (part ? part.split(':').flatMap(fromDottedTail) : []);
  const before = groups(head);
  const after = groups(tail);
  const zeros = tail === undefined ? [] : Array.from({ length: 8 - before.length - after.length }, () => '0');
  return [...before, ...zeros, ...after].map((group) => parseInt(group, 16).toString(16));
}

/** An embedded IPv4 tail ("192.0.2.1") as the two groups it stands for. */
function fromDottedTail(group: string): string[] {
  if (!group.includes('.')) return [group];
  const [a, b, c, d] = group.split('.').map(Number) as [number, number, number, number];
  return [((a << 8) | b).toString(16), ((c << 8) | d).toString(16)];
}

function ipv4Of(hextets: string[]): string {
  const [high, low] = [parseInt(hextets[6]!, 16), parseInt(hextets[7]!, 16)];
  return [high >> 8, high & 255, low >> 8, low & 255].join('.');
}
