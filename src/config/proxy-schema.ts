import { isIP } from "node:net";
import { z } from "zod";
import { parseHostPort } from "../util/hostport.js";
import { cidr, hostPort, port, seconds } from "./types.js";

/** What c-ares' setServers accepts: an IP literal, optionally with a port. */
const dnsServer = z.string().refine(
  (v) => {
    if (isIP(v)) return true;
    const hp = parseHostPort(v);
    return typeof hp !== "string" && isIP(hp.host) !== 0 && hp.port > 0;
  },
  { message: "expected an IP address, IP:PORT or [IPv6]:PORT of a DNS server" },
);

export const userSchema = z.object({
  name: z.string().min(1).max(255),
  password: z.string().min(1).max(255),
});

export const proxySchema = z
  .object({
    /** Where SOCKS5 (and, if enabled, HTTP CONNECT) is served. The seed listens on the LAN address 10.1.0.1:1080. */
    listen: z.array(hostPort).min(1).default(["127.0.0.1:1080"]),
    /** RFC 1929 users; when any are set (here or in usersFile) authentication is required. */
    users: z.array(userSchema).default([]),
    /** One `name:password` per line. */
    usersFile: z.string().optional(),
    /** Client CIDRs allowed to connect; empty = loopback plus the subnets of the listen addresses. */
    allowClients: z.array(cidr).default([]),
    destinations: z
      .object({
        /** CIDRs that override the built-in deny list (e.g. 127.0.0.0/8 for local testing). */
        allow: z.array(cidr).default([]),
        /** Extra CIDRs to refuse, on top of the built-in deny list. */
        deny: z.array(cidr).default([]),
        /** If non-empty, only these destination ports are allowed. */
        allowPorts: z.array(port).default([]),
        denyPorts: z.array(port).default([]),
        /** Domain suffixes refused before resolution (e.g. "internal", ".svc.cluster.local"). */
        denyDomains: z.array(z.string().min(1)).default([]),
        /** If non-empty, only names under these suffixes may be requested. */
        allowDomains: z.array(z.string().min(1)).default([]),
      })
      .prefault({}),
    dns: z
      .object({
        /** Resolver addresses (IP, IP:port or [IPv6]:port); empty = the system resolver (getaddrinfo). */
        servers: z.array(dnsServer).default([]),
        /** Which address family to try first when a name has both. */
        family: z.enum(["ipv4first", "ipv6first", "ipv4only", "ipv6only", "system"]).default("ipv4first"),
        timeoutSeconds: seconds.default(5),
      })
      .prefault({}),
    keepalive: z
      .object({
        /** TCP keepalive on both legs keeps NAT/conntrack state fresh on idle connections. */
        enabled: z.boolean().default(true),
        idleSeconds: z.number().int().min(1).default(60),
      })
      .prefault({}),
    /** Close a relayed connection idle this long; 0 = never (IRC-style sessions idle for days). */
    idleTimeoutSeconds: seconds.default(0),
    handshakeTimeoutSeconds: seconds.min(0.1).default(10),
    connectTimeoutSeconds: seconds.min(0.1).default(10),
    limits: z
      .object({
        maxConnections: z.number().int().min(1).default(8192),
        maxPerClient: z.number().int().min(1).default(1000),
      })
      .prefault({}),
    /** Serve HTTP CONNECT on the same port (first byte tells the protocols apart). */
    httpConnect: z.boolean().default(true),
    /** /metrics and /healthz; unset = off. */
    metrics: hostPort.optional(),
    /** How long SIGTERM waits for open connections before closing them. */
    drainSeconds: seconds.default(30),
  })
  .strict();

export type ProxyConfig = z.infer<typeof proxySchema>;
