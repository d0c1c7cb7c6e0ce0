import { z } from "zod";
import { cidr, dnsServer, hostPort, ifaceAddress, intOrHex, port, wgKey } from "./types.js";

/**
 * Several exits (`exits:`), pools of them (`pools:`) and which client goes where (`routes:`). Without
 * `exits:` the gateway section is the one exit, named "default" (today's config, unchanged).
 */

/** Exit and pool names: short, because they name an interface (wge-NAME) and an nft table. */
export const exitName = z
  .string()
  .regex(/^[a-z0-9][a-z0-9_-]{0,10}$/, "expected a name of 1-11 lowercase letters, digits, - or _");

export const interfaceName = z
  .string()
  .regex(/^[A-Za-z0-9_.=+-]{1,15}$/, "expected an interface name of 1-15 characters");

/**
 * One exit. Every key but the name is optional: the first exit takes what it lacks from the gateway
 * section (so a one-exit config moves into `exits:` unchanged); the others get their own interface,
 * table, mark and rule priority derived from the first one's, and must name their own tunnel address.
 */
export const exitEntrySchema = z
  .object({
    name: exitName,
    interface: interfaceName.optional(),
    address: ifaceAddress.optional(),
    address6: ifaceAddress.optional(),
    privateKeyFile: z.string().min(1).optional(),
    listenPort: port.optional(),
    peer: z
      .object({
        publicKey: wgKey.optional(),
        endpoint: hostPort.optional(),
        persistentKeepalive: z.number().int().min(0).max(65535).optional(),
        allowedIps: z.array(cidr).optional(),
      })
      .strict()
      .optional(),
    fwmark: intOrHex.optional(),
    table: intOrHex.optional(),
    rulePriority: z.number().int().min(1).max(32763).optional(),
    mtu: z.number().int().min(1280).max(9000).optional(),
    /**
     * The DNS servers this exit's resolver queries, through this exit's tunnel (source = its address).
     * Default: the first exit uses proxy.dns.servers; the others their exit's own resolver on its
     * tunnel address (the .1 of their subnet) when proxy.dns.servers is the derived default, else
     * proxy.dns.servers too (see withExitDns).
     */
    dnsServers: z
      .array(dnsServer)
      .min(
        1,
        "no DNS server for this exit: list its resolver, e.g. the exit's tunnel address (derived only from an address like 10.100.1.2/24 whose .1 is the exit's)",
      )
      .optional(),
    /**
     * Make-before-break replacement: while set, no new connection goes to this exit (pools skip it,
     * routes naming it go to `to`, or are refused without one); established ones stay until they close
     * or `deadline` passes, when the proxy closes them. Written by `wg-egress exit drain`.
     */
    drain: z
      .object({
        to: exitName.optional(),
        /** An ISO 8601 time with its offset, e.g. 2026-12-02T18:00:00Z. */
        deadline: z.iso.datetime({ offset: true }).optional(),
      })
      .strict()
      .optional(),
    /**
     * This exit's VPS settings on top of the `exit:` section (checked as one by the config check;
     * config/exit-hosts.ts derives the rest: its own Hetzner server, firewall and tunnel addresses).
     */
    exit: z.record(z.string(), z.unknown()).optional(),
  })
  .strict();

export type ExitEntry = z.infer<typeof exitEntrySchema>;

/** A rule matches when every criterion it names matches; the first matching rule wins. */
export const routeRuleSchema = z
  .object({
    /** SOCKS5 / HTTP CONNECT user names. */
    users: z.array(z.string().min(1)).min(1).optional(),
    /** Client addresses or subnets. */
    clients: z.array(cidr).min(1).optional(),
    /** Destination addresses or subnets (the address connected to, after the proxy's DNS). */
    destinations: z.array(cidr).min(1).optional(),
    ports: z.array(port).min(1).optional(),
    /** An exit or a pool. */
    to: exitName,
  })
  .strict();

export type RouteRule = z.infer<typeof routeRuleSchema>;

export const routesSchema = z
  .object({
    /** Where connections no rule matches go: an exit or a pool (default: the first exit). */
    default: exitName.optional(),
    rules: z.array(routeRuleSchema).default([]),
  })
  .strict();

export type RoutesConfig = z.infer<typeof routesSchema>;

export const poolsSchema = z.record(exitName, z.array(exitName).min(1));
