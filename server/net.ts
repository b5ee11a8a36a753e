/** Address policy: CIDR allow lists (node's BlockList does the matching). */
import { BlockList, isIP } from 'node:net';
import { lookup } from 'node:dns/promises';

export class AllowList {
  private readonly list = new BlockList();
  readonly cidrs: readonly string[];

  constructor(cidrs: readonly string[]) {
    this.cidrs = cidrs;
    for (const cidr of cidrs) {
      const [addr, prefix] = cidr.split('/') as [string, string | undefined];
      const family = isIP(addr) === 6 ? 'ipv6' : 'ipv4';
      if (prefix === undefined) this.list.addAddress(addr, family);
      else this.list.addSubnet(addr, Number(prefix), family);
    }
  }

  allows(address: string): boolean {
    const family = isIP(address);
    if (family === 0) return false;
    // IPv4-mapped IPv6 addresses are checked as the IPv4 address they carry.
    const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
    if (mapped) return this.list.check(mapped[1]!, 'ipv4');
    return this.list.check(address, family === 6 ? 'ipv6' : 'ipv4');
  }
}

/** A host name or literal resolved to one address; 'localhost' and names go through DNS. */
export async function resolveHost(host: string): Promise<{ address: string; family: 4 | 6 } | null> {
  const family = isIP(host);
  if (family !== 0) return { address: host, family: family as 4 | 6 };
  try {
    const r = await lookup(host, { verbatim: false });
    return { address: r.address, family: r.family as 4 | 6 };
  } catch {
    return null;
  }
}
