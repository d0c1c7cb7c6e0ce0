import { z } from "zod";
import { isIPv4MappedRule } from "../policy/addresses.js";
import { cidr, dnsServer, hostPort, port, seconds } from "./types.js";

/**
 * A client or destination rule. Rules match per address family and IPv4-mapped addresses are checked
 * as IPv4, so an IPv6 rule inside ::ffff:0:0/96 could never match: ask for the IPv4 form instead.
 */
const rule = cidr.refine((v) => !isIPv4MappedRule(v), {
  message:
    "an IPv4-mapped IPv6 rule never matches (IPv4 destinations are checked as IPv4): write it as IPv4, e.g. 10.0.0.0/8",
});

/** "HOST:PORT"; a bare ":PORT" or "PORT" means loopback (127.0.0.1), never every interface. */
const metricsListen = z.preprocess(
  (v) => (typeof v === "string" && /^:?\d+$/.test(v) ? `127.0.0.1:${v.replace(/^:/, "")}` : v),
  hostPort,
);

export const userSchema = z.object({
  name: z.string().min(1).max(255),
  password: z.string().min(1).max(255),
});

export const proxySchema = z
  .object({
    /** Where SOCKS5 (and, if enabled, HTTP CONNECT) is served. The seed listens on the LAN address 10.1.0.1:1080. */
    listen: z.array(hostPort).min(1).prefault(["127.0.0.1:1080"]),
    /**
     * RFC 1929 users; when any are set (here or in usersFile) authentication is required. Written but
     * empty is an error: an empty list must never turn authentication off.
     */
    users: z
      .array(userSchema)
      .min(1, "no users listed: add at least one, or remove the key (proxy.auth: none for open access)")
      .default([]),
    /** One `name:password` per line; a file without any user is an error, at start and on reload. */
    usersFile: z.string().min(1).optional(),
    /**
     * "password": users required (the default when users or usersFile are set; an error without them).
     * "none": clients on the allow-list need no password; say so explicitly to run without users on a
     * non-loopback address without a warning, and to let a reload remove every user.
     */
    auth: z.enum(["password", "none"]).optional(),
    /** Client CIDRs allowed to connect; empty = loopback plus the subnets of the listen addresses. */
    allowClients: z.array(rule).default([]),
    destinations: z
      .object({
        /** CIDRs that override the built-in deny list (e.g. 127.0.0.0/8 for local testing). */
        allow: z.array(rule).default([]),
        /** Extra CIDRs to refuse, on top of the built-in deny list. */
        deny: z.array(rule).default([]),
        /** If non-empty, only these destination ports are allowed. */
        allowPorts: z.array(port).default([]),
        denyPorts: z.array(port).default([]),
        /** Domain suffixes refused before resolution (e.g. "internal", ".svc.cluster.local"). */
        denyDomains: z.array(z.string().min(1)).default([]),
        /**
         * If non-empty, only names under these suffixes may be requested; IP literals are then refused
         * unless `allow` covers them.
         */
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
        /**
         * Unset: as many as the open-file limit allows (two descriptors each, plus 64), at most
         * 32,768 (see defaultMaxConnections): 9,968 under a 20,000 limit, 32,736 under systemd's 65,536.
         */
        maxConnections: z.number().int().min(1).optional(),
        maxPerClient: z.number().int().min(1).default(1000),
        /**
         * Memory for the relay's large read buffers (64 KiB and 4 MiB), process-wide; when it is used
         * up, connections read in small steps instead. Bounds what clients that stop reading can make
         * the proxy hold.
         */
        relayBufferMiB: z.number().int().min(1).default(32),
      })
      .prefault({}),
    /** Serve HTTP CONNECT on the same port (first byte tells the protocols apart). */
    httpConnect: z.boolean().default(true),
    /** /metrics and /healthz; unset = off. ":9587" or "9587" = 127.0.0.1:9587. */
    metrics: metricsListen.optional(),
    /** Who may scrape /metrics; empty = the same clients as the proxy (allowClients, or its default). */
    metricsAllowClients: z.array(rule).default([]),
    /** How long SIGTERM waits for open connections before closing them. */
    drainSeconds: seconds.default(30),
  })
  .strict();

export type ProxyConfig = z.infer<typeof proxySchema>;
