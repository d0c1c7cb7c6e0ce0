import { isIP } from "node:net";
import { z } from "zod";
import { cidr, ifaceAddress, port, wgKey } from "./types.js";

const hostname = z
  .string()
  .regex(
    /^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z][a-z0-9-]{0,61}[a-z0-9]$/i,
    "expected a fully qualified host name like irc.example.org",
  );

export const exitSchema = z
  .object({
    /** WireGuard interface on the exit VPS. */
    interface: z.string().default("wg0"),
    address: ifaceAddress.default("10.100.0.1/24"),
    address6: ifaceAddress.optional(),
    listenPort: port.default(51820),
    /** The interface that faces the internet; traffic from the tunnel is masqueraded out of it. */
    publicInterface: z.string().default("eth0"),
    /** The gateway's public key (the exit's only peer); normally taken from the secrets store. */
    gatewayPublicKey: wgKey.optional(),
    /** Tunnel addresses the gateway may use as source. */
    gatewayAllowedIps: z.array(cidr).default(["10.100.0.2/32"]),
    /** SSH public keys allowed to log in as root (keys only, no passwords). */
    sshAuthorizedKeys: z.array(z.string().min(1)).default([]),
    /**
     * The exit needs no SSH login: provision then creates it without any key (otherwise refused), and
     * secrets rotate / exit check cannot reach it.
     */
    noSsh: z.boolean().default(false),
    /** PTR record of the exit's IPv4, set through the Hetzner API (IRC servers check reverse DNS). */
    reverseDns: hostname.optional(),
    /**
     * The exit's caching resolver (unbound) on its tunnel address: the gateway's proxy resolves names
     * there by default. Empty forwarders = full recursion from the root servers.
     */
    dns: z
      .object({
        /** Upstream resolvers to forward to (IP addresses) instead of recursing, e.g. the provider's. */
        forwarders: z.array(z.string().refine((v) => isIP(v) !== 0, "expected an IP address")).default([]),
        /** Validate DNSSEC (root trust anchor from Debian's dns-root-data). */
        dnssec: z.boolean().default(true),
      })
      .strict()
      .prefault({}),
    /** Who may reach SSH; empty = the detected home IP. */
    sshAllowFrom: z.array(cidr).default([]),
    /** How the current home IP is detected (first that answers wins). */
    homeIpUrls: z.array(z.url()).default(["https://api.ipify.org", "https://ifconfig.me/ip"]),
    /** A BYO exit reached over SSH (`exit install`, and `secrets rotate` updates it this way). */
    ssh: z
      .object({
        /** USER@HOST of the exit; unset = no SSH-managed exit. */
        target: z.string().optional(),
        port: port.default(22),
        identityFile: z.string().optional(),
        /** Extra `ssh -o` options, e.g. UserKnownHostsFile=/etc/wg-egress/known_hosts. */
        options: z.array(z.string()).default([]),
        /** Where the exit's files (setup.sh, wg and nft config) live on the remote host. */
        dir: z.string().startsWith("/").default("/etc/wg-egress"),
        /** Also install the boot unit, SSH hardening, authorized keys and unattended upgrades. */
        system: z.boolean().default(true),
      })
      .strict()
      .prefault({}),
    hetzner: z
      .object({
        serverName: z.string().default("wg-exit"),
        firewallName: z.string().default("wg-exit-fw"),
        serverType: z.string().default("cax11"),
        location: z.string().default("fsn1"),
        image: z.string().default("debian-12"),
        /** Only resources carrying these labels are ever changed or deleted. */
        labels: z.record(z.string(), z.string()).default({ "managed-by": "wg-egress" }),
        sshKeyNames: z.array(z.string()).default([]),
      })
      .strict()
      .prefault({}),
  })
  .strict();

export type ExitConfig = z.infer<typeof exitSchema>;
