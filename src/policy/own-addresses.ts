import { readFile } from "node:fs/promises";
import { OperationError } from "../util/errors.js";
import { log } from "../util/log.js";
import { CidrSet } from "./addresses.js";

/**
 * The gateway's own addresses, as the kernel delivers them: the `local` routing table (what
 * `ip route show table local` prints), which has every address that is configured and up, also on
 * interfaces without carrier (os.networkInterfaces() leaves those out, yet Linux delivers to them),
 * AnyIP prefixes (`ip route add local 10.9.0.0/16 dev lo`) and the broadcast addresses.
 *
 * Read from /proc/net/fib_trie and /proc/net/ipv6_route (the same tables, as text) once a second:
 * unprivileged, no child process to supervise (an `ip monitor` child would outlive a killed proxy),
 * and a few kB read per second, parsed only when the text changed. A netlink subscription would need a
 * native module.
 */

/** How often the tables are read: a new address is refused within this plus one read. */
export const OWN_ADDRESSES_POLL_MS = 1000;

const FIB_TRIE = "/proc/net/fib_trie";
const IPV6_ROUTE = "/proc/net/ipv6_route";

/**
 * IPv4 entries of type LOCAL or BROADCAST in /proc/net/fib_trie, as CIDRs. A leaf is "|-- 10.1.0.1"
 * followed by one line per route with that key: "/32 host LOCAL", "/24 link UNICAST", ...
 */
export function parseFibTrie(text: string): string[] {
  const out = new Set<string>();
  let leaf: string | undefined;
  for (const line of text.split("\n")) {
    const l = /^\s*\|--\s+(\d+\.\d+\.\d+\.\d+)\s*$/.exec(line);
    if (l) {
      leaf = l[1];
      continue;
    }
    const r = /^\s*\/(\d+)\s+\S+\s+(LOCAL|BROADCAST)\b/.exec(line);
    if (r && leaf) out.add(`${leaf}/${r[1]}`);
  }
  return [...out];
}

const RTF_LOCAL = 0x80000000;
const RTF_ANYCAST = 0x00100000;

/**
 * IPv6 local and anycast routes in /proc/net/ipv6_route (every table): destination (32 hex digits),
 * prefix length (hex), ..., flags (8 hex digits, 9th field), device.
 */
export function parseIpv6Route(text: string): string[] {
  const out = new Set<string>();
  for (const line of text.split("\n")) {
    const f = line.trim().split(/\s+/);
    if (f.length < 10 || !/^[0-9a-f]{32}$/i.test(f[0]!)) continue;
    const flags = Number.parseInt(f[8]!, 16);
    if ((flags & (RTF_LOCAL | RTF_ANYCAST)) === 0) continue;
    const addr = f[0]!.match(/.{4}/g)!.join(":");
    out.add(`${addr}/${Number.parseInt(f[1]!, 16)}`);
  }
  return [...out];
}

/** The own-address check the destination policy consults. */
export interface OwnAddressSource {
  has(ip: string): boolean;
}

/**
 * Process-wide (one per proxy process, shared by every settings generation). Until the first read
 * has succeeded every address counts as the gateway's own: fail closed.
 */
export class KernelOwnAddresses implements OwnAddressSource {
  private set: CidrSet | undefined;
  private lastText = "";
  private timer: NodeJS.Timeout | undefined;
  private failing = false;
  private users = 0;

  constructor(
    private readonly files = { fibTrie: FIB_TRIE, ipv6Route: IPV6_ROUTE },
    private readonly pollMs = OWN_ADDRESSES_POLL_MS,
  ) {}

  has(ip: string): boolean {
    return this.set === undefined || this.set.has(ip);
  }

  /** Reads the tables (an OperationError when they cannot be read) and keeps them fresh until stop(). */
  async start(): Promise<void> {
    this.users++;
    if (this.users > 1) return;
    try {
      await this.refresh();
    } catch (err) {
      this.users--;
      throw new OperationError(
        `cannot read the local routing table (${(err as Error).message}): the proxy needs /proc/net to know the gateway's own addresses`,
      );
    }
    this.timer = setInterval(() => void this.poll(), this.pollMs).unref();
  }

  stop(): void {
    if (this.users === 0 || --this.users > 0) return;
    clearInterval(this.timer);
    this.timer = undefined;
  }

  private async poll(): Promise<void> {
    try {
      await this.refresh();
      if (this.failing) log.info("reading the local routing table works again");
      this.failing = false;
    } catch (err) {
      // Keep the last known addresses: they rarely change, and forgetting them would open the gateway.
      if (!this.failing)
        log.error(
          { err: (err as Error).message },
          "cannot re-read the local routing table; keeping the last known own addresses",
        );
      this.failing = true;
    }
  }

  private async refresh(): Promise<void> {
    const [v4, v6] = await Promise.all([
      readFile(this.files.fibTrie, "utf8"),
      // Without IPv6 (ipv6.disable=1) the file does not exist, and there are no IPv6 addresses.
      readFile(this.files.ipv6Route, "utf8").catch((e: NodeJS.ErrnoException) => {
        if (e.code === "ENOENT") return "";
        throw e;
      }),
    ]);
    const text = `${v4}\n--\n${v6}`;
    if (text === this.lastText && this.set) return;
    const cidrs = [...parseFibTrie(v4), ...parseIpv6Route(v6)];
    this.set = new CidrSet(cidrs);
    this.lastText = text;
    log.debug({ ownAddresses: cidrs }, "own addresses read from the local routing table");
  }
}

/** The proxy process's instance (started by the server's listen). */
export const ownAddresses = new KernelOwnAddresses();
