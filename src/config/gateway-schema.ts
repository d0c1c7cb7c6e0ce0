import { z } from "zod";
import { cidr, hostPort, ifaceAddress, intOrHex, port, wgKey } from "./types.js";

export const gatewaySchema = z
  .object({
    /** WireGuard interface name on the home gateway. */
    interface: z
      .string()
      .regex(/^[A-Za-z0-9_.=+-]{1,15}$/, "expected an interface name of 1-15 characters")
      .default("wg-egress"),
    /** auto = kernel WireGuard if the module loads, else wireguard-go. */
    implementation: z.enum(["auto", "kernel", "userspace"]).default("auto"),
    address: ifaceAddress.default("10.100.0.2/24"),
    /** Optional IPv6 tunnel address; without it marked IPv6 traffic is rejected (never leaked). */
    address6: ifaceAddress.optional(),
    /** File holding the gateway's private key (0600); created by `wg-egress keygen`. */
    privateKeyFile: z.string().default("/etc/wg-egress/gateway.key"),
    listenPort: port.optional(),
    peer: z
      .object({
        publicKey: wgKey.optional(),
        /** The exit's public address, HOST:PORT. */
        endpoint: hostPort.optional(),
        persistentKeepalive: z.number().int().min(0).max(65535).default(25),
        allowedIps: z.array(cidr).default(["0.0.0.0/0", "::/0"]),
      })
      .prefault({}),
    fwmark: intOrHex.default(0xca6c),
    table: intOrHex.default(51820),
    /** Priority of our first `ip rule` (fwmark → table); the two uid rules use +1 and +2. `down` removes only these. */
    rulePriority: z.number().int().min(1).max(32763).default(5182),
    /** Tunnel MTU: 1420 fits WireGuard's overhead on a 1500-byte path (same default as wg-quick). */
    mtu: z.number().int().min(1280).max(9000).default(1420),
    /** The uid the proxy runs as; connections it originates get the fwmark (seed: 400). */
    proxyUid: z.number().int().min(1).default(400),
    /** The proxy's user name instead of proxyUid; resolved through /etc/passwd by `gateway up`. */
    proxyUser: z.string().min(1).optional(),
    /** Prometheus endpoint with WireGuard metrics (prometheus_wireguard_exporter's port). */
    metrics: hostPort.prefault("127.0.0.1:9586"),
  })
  .strict();

export type GatewayConfig = z.infer<typeof gatewaySchema>;
