import { stringify } from "yaml";
import type { Config } from "../config/schema.js";

/**
 * Prometheus alerting rules: the seed's thresholds (handshake older than 150 s = stale, 300 s = down)
 * plus what only wg-egress knows (kill switch, exit IP check, proxy failures). The same groups go into
 * the Kubernetes PrometheusRule. PURE.
 */

export interface Rule {
  alert: string;
  expr: string;
  for: string;
  labels: { severity: "warning" | "critical" };
  annotations: { summary: string; description: string };
}

export interface RuleGroup {
  name: string;
  rules: Rule[];
}

const DOCTOR = "Run `wg-egress doctor` on the gateway: it names the broken part and the fix.";

export function alertGroups(config: Config): RuleGroup[] {
  const sel = `{interface="${config.gateway.interface}"}`;
  const delay = `wireguard_latest_handshake_delay_seconds${sel}`;
  const rules: Rule[] = [
    {
      alert: "WgEgressTunnelStale",
      expr: `${delay} > 150`,
      for: "1m",
      labels: { severity: "warning" },
      annotations: {
        summary: "wg-egress tunnel handshake is stale ({{ $value | humanizeDuration }} ago)",
        description: `No WireGuard handshake with the exit for over 150 s (keepalive is every ${config.gateway.peer.persistentKeepalive} s). ${DOCTOR}`,
      },
    },
    {
      alert: "WgEgressTunnelDown",
      expr: `${delay} > 300`,
      for: "1m",
      labels: { severity: "critical" },
      annotations: {
        summary: "wg-egress tunnel is down (last handshake {{ $value | humanizeDuration }} ago)",
        description: `Proxied connections fail (the kill switch refuses them) until the tunnel is back. Check the exit VPS and UDP ${config.exit.listenPort}. ${DOCTOR}`,
      },
    },
    {
      alert: "WgEgressExporterAbsent",
      expr: `absent(${delay})`,
      for: "5m",
      labels: { severity: "warning" },
      annotations: {
        summary: "no WireGuard metrics from the wg-egress gateway",
        description:
          "The exporter (wg-egress metrics, port 9586) is not scraped or the interface is gone; tunnel alerts cannot fire meanwhile.",
      },
    },
    {
      alert: "WgEgressKillSwitchNotArmed",
      expr: `wg_egress_killswitch_armed${sel} == 0`,
      for: "1m",
      labels: { severity: "critical" },
      annotations: {
        summary: "wg-egress kill switch is not armed",
        description: `If the tunnel drops now, proxied traffic may leave through the home line. Run \`wg-egress gateway up\`. ${DOCTOR}`,
      },
    },
    {
      alert: "WgEgressExitIpWrong",
      expr: `wg_egress_exit_ip_check_ok${sel} == 0`,
      for: "0m",
      labels: { severity: "critical" },
      annotations: {
        summary: "the IP seen through the wg-egress proxy is not the exit's",
        description: `The last exit IP check failed: through the proxy, the echo service saw the home IP or nothing. ${DOCTOR}`,
      },
    },
    {
      alert: "WgEgressProxyErrors",
      expr: `sum(rate(wg_egress_proxy_connections_total{result="failed"}[5m])) / sum(rate(wg_egress_proxy_connections_total[5m])) > 0.1`,
      for: "10m",
      labels: { severity: "warning" },
      annotations: {
        summary: "over 10% of wg-egress proxy connections fail ({{ $value | humanizePercentage }})",
        description: `Destinations unreachable through the exit, DNS failures, or the kill switch refusing while the tunnel is down. See the proxy log (reply codes) and ${DOCTOR}`,
      },
    },
  ];
  return [{ name: "wg-egress", rules }];
}

/** A rules file for `rule_files:` of a plain Prometheus (`promtool check rules` accepts it). */
export function renderAlerts(config: Config): string {
  return `# Rendered by \`wg-egress render alerts\`.\n${stringify({ groups: alertGroups(config) })}`;
}
