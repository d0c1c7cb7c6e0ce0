import { isIP } from "node:net";
import ipaddr from "ipaddr.js";
import { z } from "zod";
import { exitEntrySchema, poolsSchema, routesSchema } from "./egress-schema.js";
import { exitHostProblems } from "./exit-hosts.js";
import { exitSchema } from "./exit-schema.js";
import { dnsProblems, exitProblems, resolveExits, routeProblems } from "./exits.js";
import { gatewaySchema } from "./gateway-schema.js";
import { proxySchema } from "./proxy-schema.js";
import { secretsSchema } from "./secrets-schema.js";

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === "object" && v !== null && !Array.isArray(v);

/**
 * DNS at the exit by default: on a gateway (a peer is set, or there are several exits: each is a
 * tunnel, even before it is provisioned) the proxy resolves names with the
 * exit's resolver on its tunnel address (exit.address, 10.100.0.1 by default), so no name is ever
 * resolved by the home ISP; each later exit by its own (withOwnResolver). Only when proxy.dns.servers
 * is absent: an explicit list wins (every exit asks it, through its own tunnel), and an explicit []
 * means the system resolver. Works on the raw input, before validation reports anything.
 */
export function withExitDns(raw: unknown): unknown {
  if (!isObject(raw)) return raw;
  // The first exit's peer (exits:) or the gateway's: either makes this a gateway.
  const first = Array.isArray(raw.exits) && isObject(raw.exits[0]) ? raw.exits[0] : undefined;
  const peers = [first?.peer, isObject(raw.gateway) ? raw.gateway.peer : undefined].filter(isObject);
  const several = Array.isArray(raw.exits) && raw.exits.length > 1;
  if (!several && !peers.some((p) => p.endpoint !== undefined || p.publicKey !== undefined)) return raw;
  const proxy = isObject(raw.proxy) ? raw.proxy : {};
  const dns = isObject(proxy.dns) ? proxy.dns : {};
  if (dns.servers !== undefined || (proxy.dns !== undefined && !isObject(proxy.dns))) return raw;
  const exit = isObject(raw.exit) ? raw.exit : {};
  const address = (typeof exit.address === "string" ? exit.address : "10.100.0.1/24").split("/")[0];
  // An invalid exit.address is reported as such, not as a derived resolver.
  if (!isIP(address)) return raw;
  const servers = { ...raw, proxy: { ...proxy, dns: { ...dns, servers: [address] } } };
  if (!Array.isArray(raw.exits)) return servers;
  return { ...servers, exits: raw.exits.map((e, i) => (i === 0 ? e : withOwnResolver(e))) };
}

/**
 * A later exit resolves at its own exit, like the first: its resolver is on the exit's side of its
 * tunnel, by the same convention as exit.address (10.100.0.1/24) and gateway.address (10.100.0.2/24):
 * the .1 of the subnet of the exit's `address`. Not derivable (no room, or the gateway is the .1): []
 * (reported: set dnsServers). An absent or invalid address is reported as such.
 */
function withOwnResolver(entry: unknown): unknown {
  if (!isObject(entry) || entry.dnsServers !== undefined || typeof entry.address !== "string") return entry;
  let net: [ipaddr.IPv4 | ipaddr.IPv6, number];
  try {
    net = ipaddr.parseCIDR(entry.address);
  } catch {
    return entry;
  }
  const [own, len] = net;
  if (own.kind() !== "ipv4" || len > 30) return { ...entry, dnsServers: [] };
  const first = ipaddr.IPv4.networkAddressFromCIDR(entry.address).toByteArray();
  first[3] += 1;
  const peer = ipaddr.fromByteArray(first).toString();
  return { ...entry, dnsServers: peer === own.toString() ? [] : [peer] };
}

/** The value at a config path (for the error line's "key = value"). */
function valueAt(root: unknown, path: readonly (string | number)[]): unknown {
  let v = root;
  for (const k of path) v = isObject(v) || Array.isArray(v) ? (v as Record<string, unknown>)[k] : undefined;
  return v;
}

/** The one config file every command reads; each part owns one section. */
export const configSchema = z.preprocess(
  withExitDns,
  z
    .object({
      log: z
        .object({ level: z.enum(["trace", "debug", "info", "warn", "error", "fatal"]).default("info") })
        .strict()
        .prefault({}),
      proxy: proxySchema.prefault({}),
      gateway: gatewaySchema.prefault({}),
      exit: exitSchema.prefault({}),
      secrets: secretsSchema.prefault({}),
      /** Several exits; without it the gateway section is the one exit ("default"). */
      exits: z.array(exitEntrySchema).min(1).optional(),
      pools: poolsSchema.default({}),
      routes: routesSchema.optional(),
    })
    .strict()
    .superRefine((c, ctx) => {
      const exits = resolveExits(c.gateway, c.exits);
      const problems = exitProblems(exits, c.exits !== undefined);
      const authRequired =
        c.proxy.auth !== "none" && (c.proxy.users.length > 0 || c.proxy.usersFile !== undefined);
      for (const p of [
        ...problems,
        ...(problems.length ? [] : exitHostProblems(c, exits)),
        ...routeProblems(exits, c.pools, c.routes, authRequired),
        ...dnsProblems(exits, c.exits, c.proxy.dns.servers),
      ])
        ctx.addIssue({ code: "custom", path: p.path, message: p.message, input: valueAt(c, p.path) });
    }),
);

export type Config = z.infer<typeof configSchema>;
