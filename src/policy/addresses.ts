import { isIPv4, isIPv6 } from "node:net";
import { networkInterfaces } from "node:os";
import ipaddr from "ipaddr.js";

/** ::ffff:a.b.c.d (any spelling) → a.b.c.d; any other IPv6 in canonical form. Throws on invalid input. */
function canonicalIPv6(ip: string): string {
  const a = ipaddr.IPv6.parse(ip);
  return a.isIPv4MappedAddress() ? a.toIPv4Address().toString() : a.toString();
}

/**
 * The canonical form of an address from a socket or a DNS answer: IPv4 as is, IPv4-mapped IPv6 as
 * IPv4 (so rules, logs and connects see the real IPv4 address), other IPv6 canonical. Undefined for
 * anything that is not a plain IP address, a zone id ("fe80::1%eth0") included. Never throws.
 */
export function canonicalIp(ip: string): string | undefined {
  if (ipv4Number(ip) >= 0) return ip; // isIPv4 without its regex (called on every connection)
  if (ip.includes("%") || !isIPv6(ip)) return undefined;
  try {
    return canonicalIPv6(ip);
  } catch {
    return undefined;
  }
}

/** True when the CIDR (or bare address) lies inside ::ffff:0:0/96: an IPv6 rule that could only ever be meant for IPv4. */
export function isIPv4MappedRule(cidr: string): boolean {
  try {
    const [addr, prefix] = cidr.includes("/") ? ipaddr.parseCIDR(cidr) : [ipaddr.parse(cidr), 128];
    return addr.kind() === "ipv6" && prefix >= 96 && (addr as ipaddr.IPv6).isIPv4MappedAddress();
  } catch {
    return false;
  }
}

/**
 * An IPv4 address as a number (0 .. 2^32-1), or -1 when `ip` is not a dotted quad of decimal parts
 * 0-255 without leading zeros (what Node's isIPv4 accepts). Allocates nothing.
 */
export function ipv4Number(ip: string): number {
  let value = 0;
  let part = 0;
  let digits = 0;
  let dots = 0;
  for (let i = 0; i < ip.length; i++) {
    const c = ip.charCodeAt(i);
    if (c === 46) {
      if (digits === 0 || dots === 3) return -1;
      value = value * 256 + part;
      part = 0;
      digits = 0;
      dots++;
    } else if (c >= 48 && c <= 57) {
      if (digits > 0 && part === 0) return -1; // leading zero
      part = part * 10 + (c - 48);
      if (++digits > 3 || part > 255) return -1;
    } else return -1;
  }
  if (digits === 0 || dots !== 3) return -1;
  return value * 256 + part;
}

function hexDigit(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  if (c >= 97 && c <= 102) return c - 87;
  if (c >= 65 && c <= 70) return c - 55;
  return -1;
}

/** Scratch space for parseIPv6: the 8 groups of the address being parsed. */
const groups = new Uint16Array(8);

/**
 * Parses an IPv6 address (hex groups, at most one "::", optionally a dotted-quad tail; no zone id)
 * into four 32-bit words, most significant first. False when `ip` is not one. Allocates nothing.
 */
export function parseIPv6(ip: string, out: Uint32Array): boolean {
  let n = 0; // groups written
  let gap = -1; // where "::" stands, in groups
  let i = 0;
  const len = ip.length;
  if (len < 2) return false;
  if (ip.charCodeAt(0) === 58) {
    if (ip.charCodeAt(1) !== 58) return false;
    gap = 0;
    i = 2;
    if (i === len) return fill(out, n, gap);
  }
  while (i < len) {
    let value = 0;
    let digits = 0;
    const start = i;
    for (; i < len && digits < 5; i++) {
      const d = hexDigit(ip.charCodeAt(i));
      if (d < 0) break;
      value = value * 16 + d;
      digits++;
    }
    if (i < len && ip.charCodeAt(i) === 46) {
      // A dotted-quad tail: the last two groups.
      if (n > 6) return false;
      const v4 = ipv4Number(ip.slice(start));
      if (v4 < 0) return false;
      groups[n++] = v4 >>> 16;
      groups[n++] = v4 & 0xffff;
      return fill(out, n, gap);
    }
    if (digits === 0 || digits > 4 || n === 8) return false;
    groups[n++] = value;
    if (i === len) break;
    if (ip.charCodeAt(i) !== 58) return false;
    i++;
    if (i < len && ip.charCodeAt(i) === 58) {
      if (gap >= 0) return false;
      gap = n;
      i++;
      if (i === len) break;
    } else if (i === len) return false; // a trailing single ':'
  }
  return fill(out, n, gap);
}

/** Expands the "::" gap and packs the groups into words. */
function fill(out: Uint32Array, n: number, gap: number): boolean {
  if (gap < 0 ? n !== 8 : n > 7) return false;
  const zeros = 8 - n;
  for (let g = 0, src = 0; g < 8; g++) {
    const v = gap >= 0 && g >= gap && g < gap + zeros ? 0 : groups[src++]!;
    if (g % 2 === 0) out[g >> 1] = v * 65536;
    else out[g >> 1] = out[g >> 1]! + v;
  }
  return true;
}

/** Scratch space for CidrSet.has: the IPv6 address being looked up. */
const lookup6 = new Uint32Array(4);

/** -1, 0 or 1 as words a[ai..ai+3] compare with b[bi..bi+3]. */
function compare6(a: Uint32Array, ai: number, b: Uint32Array, bi: number): number {
  for (let k = 0; k < 4; k++) {
    const x = a[ai + k]!;
    const y = b[bi + k]!;
    if (x !== y) return x < y ? -1 : 1;
  }
  return 0;
}

/**
 * CIDRs ("10.0.0.0/8", "fd00::/8", or bare addresses) matched per address family: an IPv4 rule
 * matches only IPv4 addresses and an IPv6 rule only IPv6 ones (`::/0` or `::ffff:0:0/96` never cover
 * an IPv4 address). The rules are kept as sorted, merged address ranges and looked up by binary
 * search without allocating: it runs for every connection (client allow-list, destination rules,
 * own addresses), and Node's BlockList created a native SocketAddress object per check. Addresses
 * must be canonical (see canonicalIp); anything else matches nothing.
 */
export class CidrSet {
  /** Start and end of each IPv4 range, in order: [start0, end0, start1, end1, ...]. */
  private readonly v4: Float64Array;
  /** Start (4 words) and end (4 words) of each IPv6 range, in order. */
  private readonly v6: Uint32Array;
  readonly size: number;

  constructor(cidrs: Iterable<string>) {
    const r4: [number, number][] = [];
    const r6: Uint32Array[] = [];
    let n = 0;
    for (const cidr of cidrs) {
      const text = cidr.includes("/") ? cidr : `${cidr}/${isIPv4(cidr) ? 32 : 128}`;
      const [addr, prefix] = ipaddr.parseCIDR(text); // throws on a bad rule, as config validation does
      const bytes = addr.toByteArray();
      const bits = bytes.length * 8;
      // Words of the address; the host bits below the prefix are cleared for the start, set for the end.
      const words = bytes.length / 4;
      const range = new Uint32Array(words * 2);
      for (let w = 0; w < words; w++) {
        const word =
          ((bytes[w * 4]! << 24) |
            (bytes[w * 4 + 1]! << 16) |
            (bytes[w * 4 + 2]! << 8) |
            bytes[w * 4 + 3]!) >>>
          0;
        const hostBits = Math.min(32, Math.max(0, (w + 1) * 32 - prefix));
        const mask = hostBits === 32 ? 0 : (0xffffffff << hostBits) >>> 0;
        range[w] = (word & mask) >>> 0;
        range[words + w] = (word | ~mask) >>> 0;
      }
      if (bits === 32) r4.push([range[0]!, range[1]!]);
      else r6.push(range);
      n++;
    }
    this.size = n;
    // Sorted by start, overlapping and adjacent ranges merged, so a lookup needs one binary search.
    r4.sort((a, b) => a[0] - b[0]);
    const m4: number[] = [];
    for (const [s, e] of r4) {
      const last = m4.length - 1; // the end of the last range
      if (m4.length > 0 && s <= m4[last]! + 1) m4[last] = Math.max(m4[last]!, e);
      else m4.push(s, e);
    }
    this.v4 = Float64Array.from(m4);
    r6.sort((a, b) => compare6(a, 0, b, 0));
    const m6: Uint32Array[] = [];
    for (const r of r6) {
      const last = m6[m6.length - 1];
      // Overlapping (start within the last range): extend the end. Adjacent IPv6 ranges stay apart.
      if (last && compare6(r, 0, last, 4) <= 0) {
        if (compare6(r, 4, last, 4) > 0) last.set(r.subarray(4), 4);
      } else m6.push(Uint32Array.from(r));
    }
    this.v6 = new Uint32Array(m6.length * 8);
    for (const [i, r] of m6.entries()) this.v6.set(r, i * 8);
  }

  has(ip: string): boolean {
    if (ip.includes(":")) {
      const v6 = this.v6;
      if (v6.length === 0 || !parseIPv6(ip, lookup6)) return false;
      // The last range starting at or below the address.
      let lo = 0;
      let hi = v6.length / 8 - 1;
      let found = -1;
      while (lo <= hi) {
        const mid = (lo + hi) >> 1;
        if (compare6(v6, mid * 8, lookup6, 0) <= 0) {
          found = mid;
          lo = mid + 1;
        } else hi = mid - 1;
      }
      return found >= 0 && compare6(lookup6, 0, v6, found * 8 + 4) <= 0;
    }
    const v4 = this.v4;
    if (v4.length === 0) return false;
    const x = ipv4Number(ip);
    if (x < 0) return false;
    let lo = 0;
    let hi = v4.length / 2 - 1;
    let found = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (v4[mid * 2]! <= x) {
        found = mid;
        lo = mid + 1;
      } else hi = mid - 1;
    }
    return found >= 0 && x <= v4[found * 2 + 1]!;
  }
}

export interface InterfaceAddress {
  address: string;
  /** The interface's subnet, e.g. "10.1.0.1/24". */
  cidr: string;
}

/** Addresses of the interfaces that are up and running, with their subnets (for the default client allow-list). */
export function interfaceAddresses(): InterfaceAddress[] {
  const out: InterfaceAddress[] = [];
  for (const list of Object.values(networkInterfaces())) {
    for (const a of list ?? []) if (a.cidr) out.push({ address: a.address, cidr: a.cidr });
  }
  return out;
}
