import { isIP } from "node:net";
import { z } from "zod";
import { exitSchema } from "./exit-schema.js";
import { gatewaySchema } from "./gateway-schema.js";
import { proxySchema } from "./proxy-schema.js";
import { secretsSchema } from "./secrets-schema.js";

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === "object" && v !== null && !Array.isArray(v);

/**
 * DNS at the exit by default: on a gateway (gateway.peer is set) the proxy resolves names with the
 * exit's resolver on its tunnel address (exit.address, 10.100.0.1 by default), so no name is ever
 * resolved by the home ISP. Only when proxy.dns.servers is absent: an explicit list wins, and an
 * explicit [] means the system resolver. Works on the raw input, before validation reports anything.
 */
export function withExitDns(raw: unknown): unknown {
  if (!isObject(raw) || !isObject(raw.gateway) || !isObject(raw.gateway.peer)) return raw;
  if (raw.gateway.peer.endpoint === undefined && raw.gateway.peer.publicKey === undefined) return raw;
  const proxy = isObject(raw.proxy) ? raw.proxy : {};
  const dns = isObject(proxy.dns) ? proxy.dns : {};
  if (dns.servers !== undefined || (proxy.dns !== undefined && !isObject(proxy.dns))) return raw;
  const exit = isObject(raw.exit) ? raw.exit : {};
  const address = (typeof exit.address === "string" ? exit.address : "10.100.0.1/24").split("/")[0];
  // An invalid exit.address is reported as such, not as a derived resolver.
  if (!isIP(address)) return raw;
  return { ...raw, proxy: { ...proxy, dns: { ...dns, servers: [address] } } };
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
    })
    .strict(),
);

export type Config = z.infer<typeof configSchema>;
