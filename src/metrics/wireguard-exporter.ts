import type { WgInterface, WgPeer } from "../wireguard/dump.js";

/**
 * WireGuard metrics with the names, types, HELP texts and labels of MindFlavor's
 * prometheus_wireguard_exporter (3.6.x), so dashboards and alerts written for it keep working.
 * Semantics kept from it:
 * - sent/received are seen from THIS host: sent = the dump's transfer-tx (bytes we sent to the peer),
 *   received = transfer-rx;
 * - latest_handshake_seconds is the UNIX timestamp (0 = never);
 * - latest_handshake_delay_seconds = now - latest_handshake (its `-d` mode; for "never" that is the
 *   time since the epoch, so `> 300` alerts fire for a tunnel that never came up);
 * - labels interface, public_key, allowed_ips (the dump's comma-joined list, "(none)" when empty),
 *   friendly_name only for peers that have one; `-s` (allowed_ip_N/allowed_subnet_N) and `-r`
 *   (remote_ip/remote_port) are its opt-in modes, offered here as options too.
 * PURE: dump in, metric families out.
 */

export interface Sample {
  labels: Record<string, string>;
  value: number;
}

export interface Family {
  name: string;
  help: string;
  type: "counter" | "gauge";
  values: Sample[];
}

export interface ExporterOptions {
  /** `-s`: one label pair per allowed IP instead of the joined `allowed_ips`. */
  separateAllowedIps?: boolean;
  /** `-r`: the peer's endpoint as remote_ip and remote_port labels. */
  exportRemoteIpAndPort?: boolean;
  /** public key → friendly_name (the upstream reads them from comments in the wg config). */
  friendlyNames?: Record<string, string>;
}

/** "[fe80::1%eth0]:51820" or "203.0.113.10:51820" → ip and port (the scope id is dropped, as upstream does). */
export function splitEndpoint(endpoint: string): { ip: string; port: string } | null {
  const m = /^\[([^\]%]+)(?:%[^\]]*)?\]:(\d+)$/.exec(endpoint) ?? /^([^:]+):(\d+)$/.exec(endpoint);
  return m ? { ip: m[1], port: m[2] } : null;
}

export function peerLabels(peer: WgPeer, opts: ExporterOptions = {}): Record<string, string> {
  const labels: Record<string, string> = { interface: peer.interface, public_key: peer.publicKey };
  if (!opts.separateAllowedIps) labels.allowed_ips = peer.allowedIps.join(",") || "(none)";
  const friendly = opts.friendlyNames?.[peer.publicKey];
  if (friendly) labels.friendly_name = friendly;
  const remote = opts.exportRemoteIpAndPort && peer.endpoint ? splitEndpoint(peer.endpoint) : null;
  if (remote) labels.remote_ip = remote.ip;
  if (opts.separateAllowedIps)
    peer.allowedIps.forEach((cidr, i) => {
      const [ip, subnet] = cidr.split("/");
      labels[`allowed_ip_${i}`] = ip;
      labels[`allowed_subnet_${i}`] = subnet ?? "";
    });
  if (remote) labels.remote_port = remote.port;
  return labels;
}

export const WG_METRICS = {
  sent: "wireguard_sent_bytes_total",
  received: "wireguard_received_bytes_total",
  handshake: "wireguard_latest_handshake_seconds",
  delay: "wireguard_latest_handshake_delay_seconds",
} as const;

export function wireguardFamilies(
  interfaces: readonly WgInterface[],
  nowSeconds: number,
  opts: ExporterOptions = {},
): Family[] {
  const sent: Sample[] = [];
  const received: Sample[] = [];
  const handshake: Sample[] = [];
  const delay: Sample[] = [];
  // Sorted by interface like upstream, so the output is stable between scrapes.
  for (const iface of [...interfaces].sort((a, b) => a.name.localeCompare(b.name)))
    for (const peer of iface.peers) {
      const labels = peerLabels(peer, opts);
      sent.push({ labels, value: peer.txBytes });
      received.push({ labels, value: peer.rxBytes });
      handshake.push({ labels, value: peer.latestHandshake });
      delay.push({ labels, value: Math.max(0, nowSeconds - peer.latestHandshake) });
    }
  return [
    { name: WG_METRICS.sent, help: "Bytes sent to the peer", type: "counter", values: sent },
    { name: WG_METRICS.received, help: "Bytes received from the peer", type: "counter", values: received },
    {
      name: WG_METRICS.handshake,
      help: "UNIX timestamp seconds of the last handshake",
      type: "gauge",
      values: handshake,
    },
    { name: WG_METRICS.delay, help: "Seconds from the last handshake", type: "gauge", values: delay },
  ];
}
