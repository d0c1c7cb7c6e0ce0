import { stringify } from "yaml";
import { exitsOf } from "../config/exit-hosts.js";
import type { Config } from "../config/schema.js";

/**
 * Prometheus alerting rules: the seed's thresholds (handshake older than 150 s = stale, 300 s = down)
 * plus what only wg-egress knows (tunnel state, kill switch, exit IP check, proxy failures). The same
 * groups go into the Kubernetes PrometheusRule. PURE.
 */

/** The gateway exporter's scrape job, as the rules expect it (`render k8s` sets it; name a plain Prometheus' job so). */
export const GATEWAY_JOB = "wg-egress-gateway";

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

/** A PromQL regex matching exactly these names (interface names may hold . and +). */
export const anyOf = (names: readonly string[]) =>
  names.map((n) => n.replace(/[.+]/g, (c) => `\\\\${c}`)).join("|");

export function alertGroups(config: Config): RuleGroup[] {
  // Every exit's interface (one exit: exactly today's selectors); each alert fires per interface.
  const ifnames = exitsOf(config).map((x) => x.interface);
  const sel = ifnames.length === 1 ? `{interface="${ifnames[0]}"}` : `{interface=~"${anyOf(ifnames)}"}`;
  const delay = `wireguard_latest_handshake_delay_seconds${sel}`;
  const gatewayUp = `up{job="${GATEWAY_JOB}"}`;
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
      // One series per interface, whichever way it is down: the exporter's verdict (link down, no
      // tunnel route, no handshake for 300 s), the handshake age alone (upstream's exporter), or the
      // interface gone or without its peer (no wireguard_* series) while the exporter itself answers.
      expr: [
        `max by (interface) (wg_egress_tunnel_state${sel.replace("}", ',state="down"}')}) == 1`,
        `max by (interface) (${delay}) > 300`,
        // absent() per interface: it labels its answer with that interface.
        ...ifnames.map(
          (i) =>
            `(absent(wireguard_latest_handshake_seconds{interface="${i}"}) and on () max(${gatewayUp}) == 1)`,
        ),
      ].join("\nor "),
      for: "1m",
      labels: { severity: "critical" },
      annotations: {
        summary: "wg-egress tunnel {{ $labels.interface }} is down",
        description: `The gateway reports the tunnel down (link down, no route in table ${config.gateway.table}, no handshake for over 300 s), or the interface or its peer is gone. Proxied connections fail (the kill switch refuses them) until the tunnel is back. Check the exit VPS and UDP ${config.exit.listenPort}. ${DOCTOR}`,
      },
    },
    {
      alert: "WgEgressExporterAbsent",
      expr: `absent(${gatewayUp}) or max by (job) (${gatewayUp}) == 0`,
      for: "5m",
      labels: { severity: "warning" },
      annotations: {
        summary: "the wg-egress gateway exporter is not scraped",
        description: `No target of job ${GATEWAY_JOB} is up: \`wg-egress metrics\` (port 9586) is stopped or unreachable, or Prometheus scrapes it under another job name (these rules expect job="${GATEWAY_JOB}"). Tunnel and kill-switch alerts cannot fire meanwhile.`,
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
  return `# Rendered by \`wg-egress render alerts\`.\n${stringify({ groups: alertGroups(config) }, { lineWidth: 0 })}`;
}
