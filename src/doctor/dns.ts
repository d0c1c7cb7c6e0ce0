import { isIP } from "node:net";
import { fileURLToPath } from "node:url";
import ipaddr from "ipaddr.js";
import type { Config } from "../config/schema.js";
import type { DataPath } from "../gateway/model.js";
import { inClientSubnets } from "../gateway/routes.js";
import { parseHostPort } from "../util/hostport.js";
import { run } from "../util/run.js";
import { type CheckResult, fail, pass, skip, warn } from "./check.js";

/**
 * "DNS through the tunnel": which resolver the proxy really uses, which way its queries go (the same
 * rules the gateway installs: client subnets on the LAN, everything else into the tunnel), and a real
 * query sent as the proxy's uid — through the marks, rules and kill switch the proxy's own queries meet.
 */

const NAME = "DNS through the tunnel";
export const DNS_PROBE_JS = fileURLToPath(new URL("./dns-probe.js", import.meta.url));

export type Via = "tunnel" | "lan" | "local";

export interface DnsRoute {
  /** true: no proxy.dns.servers, the system resolver (/etc/resolv.conf) answers. */
  system: boolean;
  servers: { address: string; via: Via }[];
  /** The exit's tunnel address, where its resolver listens. */
  exit: string | null;
}

export interface DnsProbe {
  name: string;
  /** The resolver answered (an address, or "no such name"): the path works. */
  answered: boolean;
  error?: string;
}

const hostOf = (server: string) => {
  if (isIP(server)) return server;
  const hp = parseHostPort(server);
  return typeof hp === "string" ? server : hp.host;
};

/** PURE: the proxy's resolvers and the way each is reached. */
export function dnsRoute(config: Config, p: DataPath, resolvConf: string | null): DnsRoute {
  const configured = config.proxy.dns.servers;
  const system = configured.length === 0;
  const addresses = system
    ? [...(resolvConf ?? "").matchAll(/^\s*nameserver\s+(\S+)/gm)].map((m) => m[1])
    : configured.map(hostOf);
  const via = (a: string): Via =>
    ipaddr.isValid(a) && ipaddr.process(a).range() === "loopback"
      ? "local"
      : inClientSubnets(p, a)
        ? "lan"
        : "tunnel";
  return {
    system,
    servers: addresses.map((address) => ({ address, via: via(address) })),
    exit: config.exit.address.split("/")[0],
  };
}

/** PURE verdict from the route and the query made as the proxy's uid (null: not made, `why`). */
export function dnsCheck(
  route: DnsRoute,
  probe: DnsProbe | null,
  why = "needs root to query as the proxy's uid",
): CheckResult {
  const list = (vs: readonly Via[]) =>
    route.servers
      .filter((s) => vs.includes(s.via))
      .map((s) => s.address)
      .join(", ");
  const all = list(["tunnel", "lan", "local"]);
  const source = route.system ? "the system resolver (/etc/resolv.conf)" : "proxy.dns.servers";
  if (!route.servers.length) return fail(NAME, `no resolver: ${source} lists none`, "set proxy.dns.servers");
  if (!probe) return skip(NAME, `${why} (resolvers: ${all})`);
  const local = list(["local"]);
  const lan = list(["lan"]);
  if (!probe.answered) {
    const fix = lan
      ? `the LAN resolver ${lan} does not answer the proxy (or refuses it): check it, or remove proxy.dns.servers to resolve at the exit`
      : local
        ? `the local resolver ${local} does not answer: check it, or set proxy.dns.servers`
        : "the queries go into the tunnel: fix the tunnel checks above; on the exit the resolver listens on its tunnel address (pgrep unbound; wg-egress exit install runs the setup again)";
    return fail(
      NAME,
      `the proxy's query for ${probe.name} to ${all} got no answer (${probe.error ?? "no reply"})`,
      fix,
    );
  }
  if (lan)
    return warn(
      NAME,
      `${probe.name} resolved by ${lan} on the LAN: that resolver sees every name the proxy looks up, and asks its own upstream via the home line`,
      "remove proxy.dns.servers to resolve at the exit (the default); keep it only if the LAN resolver may see the names",
    );
  if (local)
    return warn(
      NAME,
      `${source} is ${local} (a local stub): it answered ${probe.name}, but its upstream queries leave via the home line`,
      "remove proxy.dns.servers (or set it to the exit's tunnel address) so the names are resolved at the exit",
    );
  const tunnel = list(["tunnel"]);
  const atExit = route.servers.every((s) => s.address === route.exit);
  return pass(
    NAME,
    `${probe.name} resolved by ${tunnel} through the tunnel${atExit ? " (the exit's resolver)" : ""}`,
  );
}

/** The name doctor looks up: the IP echo URL's host when it is a name, else example.com. */
export function dnsProbeName(url: string | null): string {
  try {
    const host = url ? new URL(url).hostname.replace(/^\[|\]$/g, "") : "";
    return host && !isIP(host) ? host : "example.com";
  } catch {
    return "example.com";
  }
}

/** Why the query is not made, or null: it needs root, and a gateway (without one there is no tunnel). */
export function noDnsProbe(config: Config, root: boolean): string | null {
  if (!config.gateway.peer.endpoint && !config.gateway.peer.publicKey)
    return "no tunnel configured (gateway.peer): not queried";
  return root ? null : "needs root to query as the proxy's uid";
}

/** Resolves `name` with the proxy's DNS settings in a process running as the proxy's uid. */
export async function probeDns(config: Config, uid: number, name: string): Promise<DnsProbe> {
  const dns = config.proxy.dns;
  const r = await run(
    "setpriv",
    [
      `--reuid=${uid}`,
      `--regid=${uid}`,
      "--clear-groups",
      "--",
      process.execPath,
      DNS_PROBE_JS,
      JSON.stringify({ ...dns, name }),
    ],
    { allowFail: true, timeoutMs: (dns.timeoutSeconds + 10) * 1000 },
  );
  try {
    return { name, ...(JSON.parse(r.stdout) as Omit<DnsProbe, "name">) };
  } catch {
    return {
      name,
      answered: false,
      error: (r.stderr || r.stdout).trim().split("\n").at(-1) || `exit ${r.code}`,
    };
  }
}
