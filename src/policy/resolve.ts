import { promises as dns } from "node:dns";
import { isIP } from "node:net";
import type { ProxyConfig } from "../config/proxy-schema.js";
import { canonicalIp } from "./addresses.js";

export type DnsConfig = ProxyConfig["dns"];

/** Raised by name resolution, so its codes (c-ares reuses ECONNREFUSED, ETIMEOUT) are not read as TCP errors. */
export class DnsError extends Error {
  constructor(
    readonly code: string,
    readonly hostname: string,
  ) {
    super(`cannot resolve ${hostname}: ${code}`);
    this.name = "DnsError";
  }
}

function byFamily(addresses: string[], family: DnsConfig["family"]): string[] {
  switch (family) {
    case "ipv4only":
      return addresses.filter((a) => isIP(a) === 4);
    case "ipv6only":
      return addresses.filter((a) => isIP(a) === 6);
    case "ipv4first":
      return [...addresses.filter((a) => isIP(a) === 4), ...addresses.filter((a) => isIP(a) === 6)];
    case "ipv6first":
      return [...addresses.filter((a) => isIP(a) === 6), ...addresses.filter((a) => isIP(a) === 4)];
    default:
      return addresses;
  }
}

function codeOf(err: unknown): string {
  return (err as NodeJS.ErrnoException)?.code ?? "EFAIL";
}

/**
 * Resolves destination names for the proxy, so names leave through the tunnel once the gateway marks
 * the proxy's packets. Without servers it uses the system resolver (getaddrinfo, /etc/hosts included);
 * with servers, c-ares queries exactly those. Every lookup is bounded by timeoutSeconds and fails with
 * a DnsError; the result is ordered by the family preference.
 */
export class DestinationResolver {
  private readonly resolver?: dns.Resolver;
  private readonly timeoutMs: number;

  /**
   * `source`: an exit's tunnel addresses, the source of every query (several exits: the gateway
   * routes them into that exit, under its kill switch). Only with servers: getaddrinfo cannot be bound.
   */
  constructor(
    private readonly cfg: DnsConfig,
    source?: { v4?: string; v6?: string },
  ) {
    this.timeoutMs = Math.max(1, Math.round(cfg.timeoutSeconds * 1000));
    if (cfg.servers.length > 0) {
      this.resolver = new dns.Resolver({ timeout: this.timeoutMs, tries: 1 });
      this.resolver.setServers(cfg.servers);
      if (source) this.resolver.setLocalAddress(source.v4 ?? "0.0.0.0", source.v6);
    } else if (source) throw new Error("a bound resolver needs DNS servers");
  }

  async resolve(name: string): Promise<string[]> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new DnsError("ETIMEOUT", name)), this.timeoutMs);
    });
    try {
      const found = await Promise.race([this.query(name), timeout]);
      // Canonical, IPv4-mapped as IPv4; an answer that is no plain address (a zone id) is dropped.
      const plain = found.map(canonicalIp).filter((a): a is string => a !== undefined);
      const addresses = byFamily(plain, this.cfg.family);
      if (addresses.length === 0) throw new DnsError("ENODATA", name);
      return addresses;
    } finally {
      clearTimeout(timer);
    }
  }

  private async query(name: string): Promise<string[]> {
    const family = this.cfg.family;
    if (!this.resolver) {
      const fam = family === "ipv4only" ? 4 : family === "ipv6only" ? 6 : 0;
      try {
        return (await dns.lookup(name, { all: true, family: fam, verbatim: true })).map((a) => a.address);
      } catch (e) {
        throw new DnsError(codeOf(e), name);
      }
    }
    const r = this.resolver;
    const queries = [
      family === "ipv6only" ? Promise.resolve([]) : r.resolve4(name),
      family === "ipv4only" ? Promise.resolve([]) : r.resolve6(name),
    ];
    const [v4, v6] = await Promise.allSettled(queries);
    const out = [
      ...(v4.status === "fulfilled" ? v4.value : []),
      ...(v6.status === "fulfilled" ? v6.value : []),
    ];
    if (out.length > 0) return out;
    const failed = [v4, v6].find((s) => s.status === "rejected") as PromiseRejectedResult | undefined;
    throw new DnsError(failed ? codeOf(failed.reason) : "ENODATA", name);
  }
}
