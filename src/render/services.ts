import type { Config } from "../config/schema.js";

/**
 * The three services as data, rendered both as systemd units (systemd.ts) and as a NixOS module
 * (nixos.ts), so the two stay equivalent:
 * - wg-egress-gateway: the agent, `gateway run`, after `gateway up --killswitch-only` (ExecStartPre: the
 *   unit counts as started only once the kill switch is armed); restarted whenever it ends; root with only
 *   CAP_NET_ADMIN (ip, nft, wg, the TUN device). Stopping it leaves the kill switch armed;
 * - wg-egress-proxy: the fixed unprivileged user whose uid the gateway marks; no capabilities; bound to
 *   the gateway (BindsTo + After), so it never accepts before the kill switch is up, and stops with it;
 * - wg-egress-metrics: the exporter; after the gateway but not bound to it (it must report "down").
 * PURE.
 */

/** Placeholders the renderers replace: the wg-egress executable and the config file. */
export const EXEC = "@WG_EGRESS@";
export const CONFIG = "@CONFIG@";

export type Directives = [key: string, value: string][];

export interface ServiceSpec {
  name: string;
  description: string;
  unit: Directives;
  service: Directives;
  /** Commands the service runs besides wg-egress (NixOS puts these packages on its PATH). */
  needs: string[];
}

export const PROXY_USER = "wg-egress-proxy";

/**
 * Shared by every unit: nothing writes outside what it declares. (No MemoryDenyWriteExecute: V8's JIT
 * needs writable and executable memory. No ProtectKernelTunables for the gateway: it sets src_valid_mark.)
 */
const HARDENING: Directives = [
  ["NoNewPrivileges", "yes"],
  ["ProtectSystem", "strict"],
  ["ProtectHome", "yes"],
  ["PrivateTmp", "yes"],
  ["ProtectControlGroups", "yes"],
  ["ProtectKernelModules", "yes"],
  ["ProtectClock", "yes"],
  ["ProtectHostname", "yes"],
  ["RestrictNamespaces", "yes"],
  ["RestrictRealtime", "yes"],
  ["RestrictSUIDSGID", "yes"],
  ["LockPersonality", "yes"],
  ["SystemCallArchitectures", "native"],
  ["SystemCallFilter", "@system-service"],
  ["SystemCallErrorNumber", "EPERM"],
  ["UMask", "0077"],
];

/** The proxy user: gateway.proxyUser when named, else our fixed system user with gateway.proxyUid. */
export function proxyUser(config: Config): { name: string; uid: number } {
  return { name: config.gateway.proxyUser ?? PROXY_USER, uid: config.gateway.proxyUid };
}

export function serviceSpecs(config: Config): ServiceSpec[] {
  const cmd = (args: string) => `${EXEC} ${args} --config ${CONFIG}`;
  const privilegedPort = config.proxy.listen.some((l) => l.port < 1024);
  const proxyCaps = privilegedPort ? "CAP_NET_BIND_SERVICE" : "";
  const user = proxyUser(config).name;
  return [
    {
      name: "wg-egress-gateway",
      description: "wg-egress gateway: WireGuard tunnel, policy routing, nftables marking and kill switch",
      unit: [
        ["Wants", "network-online.target"],
        // After the firewall's boot-time load (it starts with `flush ruleset`); a later reload that
        // deletes our table is repaired by the agent within seconds.
        ["After", "network-online.target nftables.service"],
        ["Before", "wg-egress-proxy.service"],
        // Keep restarting: a gateway that gave up would leave the tunnel broken (closed, but broken).
        ["StartLimitIntervalSec", "0"],
      ],
      service: [
        ["Type", "exec"],
        // The kill switch before the unit counts as started: the proxy (After=) never runs without it.
        ["ExecStartPre", cmd("gateway up --killswitch-only")],
        ["ExecStart", cmd("gateway run")],
        ["Restart", "always"],
        ["RestartSec", "2s"],
        // ip/nft/wg and wireguard-go's TUN device need nothing but CAP_NET_ADMIN.
        ["CapabilityBoundingSet", "CAP_NET_ADMIN"],
        // wireguard-go's control sockets (/run/wireguard) and the short-lived 0600 key file (/run/wg-egress-*).
        ["ReadWritePaths", "/run"],
        ["RestrictAddressFamilies", "AF_UNIX AF_NETLINK AF_INET AF_INET6"],
        ...HARDENING,
      ],
      needs: ["wireguard-tools", "wireguard-go", "iproute2", "nftables"],
    },
    {
      name: "wg-egress-proxy",
      description: "wg-egress SOCKS5 proxy (its connections leave through the tunnel)",
      unit: [
        // Stopped (or never started) whenever the gateway, and with it the kill switch, is not up;
        // restarted with it.
        ["BindsTo", "wg-egress-gateway.service"],
        ["PartOf", "wg-egress-gateway.service"],
        ["After", "wg-egress-gateway.service network-online.target"],
        ["Wants", "network-online.target"],
      ],
      service: [
        ["Type", "exec"],
        ["ExecStart", cmd("proxy")],
        ["Restart", "on-failure"],
        ["RestartSec", "2s"],
        // A fixed uid: the gateway's nft rule marks exactly this uid's connections.
        ["User", user],
        ["Group", user],
        ["DynamicUser", "no"],
        ["CapabilityBoundingSet", proxyCaps],
        ["AmbientCapabilities", proxyCaps],
        ["LimitNOFILE", "65536"],
        ["PrivateDevices", "yes"],
        ["ProtectKernelTunables", "yes"],
        ["ProtectKernelLogs", "yes"],
        ["ProtectProc", "invisible"],
        ["RestrictAddressFamilies", "AF_UNIX AF_NETLINK AF_INET AF_INET6"],
        ...HARDENING,
      ],
      needs: [],
    },
    {
      name: "wg-egress-metrics",
      description: "wg-egress metrics: WireGuard exporter and kill-switch state for Prometheus",
      unit: [["After", "wg-egress-gateway.service network-online.target"]],
      service: [
        ["Type", "exec"],
        ["ExecStart", `${EXEC} metrics --config ${CONFIG}`],
        ["Restart", "on-failure"],
        ["RestartSec", "5s"],
        // `wg show` and `nft list` need CAP_NET_ADMIN; nothing else.
        ["CapabilityBoundingSet", "CAP_NET_ADMIN"],
        ["ReadWritePaths", "-/run/wireguard"],
        ["PrivateDevices", "yes"],
        ["ProtectKernelTunables", "yes"],
        ["RestrictAddressFamilies", "AF_UNIX AF_NETLINK AF_INET AF_INET6"],
        ...HARDENING,
      ],
      needs: ["wireguard-tools", "iproute2", "nftables"],
    },
  ];
}
