import { exitsOf } from "../config/exit-hosts.js";
import type { Config } from "../config/schema.js";

/**
 * The Grafana dashboard (JSON model, schemaVersion 39): the tunnel state the exporter reports, the
 * handshake age with the seed's thresholds (green < 150 s, stale < 300 s, down above), throughput
 * in/out, kill switch, proxy connections and refusals. The data source is a template variable, so it
 * imports into any Grafana. With several exits, the interface variable takes any of them (all by default:
 * the top row shows the worst) and a row per exit follows: state, handshake age, tunnel throughput,
 * and the proxy's open connections, results and bytes for that exit. PURE.
 */

// biome-ignore lint/suspicious/noTemplateCurlyInString: Grafana's variable syntax, not a JS template
const DS = { type: "prometheus", uid: "${datasource}" };
const IF = `interface=~"$interface"`;

type Target = { expr: string; legendFormat: string };
type Panel = Record<string, unknown>;

const target = (expr: string, legendFormat: string, i: number) => ({
  refId: String.fromCharCode(65 + i),
  datasource: DS,
  expr,
  legendFormat,
});

function panel(
  id: number,
  type: "stat" | "timeseries",
  title: string,
  gridPos: { x: number; y: number; w: number; h: number },
  targets: Target[],
  fieldConfig: Panel,
  description: string,
): Panel {
  return {
    id,
    type,
    title,
    description,
    datasource: DS,
    gridPos,
    targets: targets.map((t, i) => target(t.expr, t.legendFormat, i)),
    fieldConfig: { defaults: fieldConfig, overrides: [] },
    options:
      type === "stat"
        ? {
            colorMode: "background",
            graphMode: "none",
            reduceOptions: { calcs: ["lastNotNull"], fields: "", values: false },
          }
        : {
            legend: { displayMode: "list", placement: "bottom", showLegend: true },
            tooltip: { mode: "multi", sort: "none" },
          },
  };
}

const thresholds = (...steps: [string, number | null][]) => ({
  mode: "absolute",
  steps: steps.map(([color, value]) => ({ color, value })),
});

/** A 0/1 gauge as a red or green word, in the top row. */
const boolStat = (
  id: number,
  title: string,
  x: number,
  expr: string,
  [no, yes]: [string, string],
  description: string,
) =>
  panel(
    id,
    "stat",
    title,
    { x, y: 0, w: 6, h: 6 },
    [{ expr, legendFormat: title }],
    {
      thresholds: thresholds(["red", null], ["green", 1]),
      mappings: [
        {
          type: "value",
          options: {
            "0": { text: no, color: "red", index: 0 },
            "1": { text: yes, color: "green", index: 1 },
          },
        },
      ],
    },
    description,
  );

/** The seed's handshake-age thresholds (up < 150 s, stale < 300 s, down above). */
const SEED_THRESHOLDS = thresholds(["green", null], ["orange", 150], ["red", 300]);

/**
 * The state the exporter reports (wg_egress_tunnel_state, 1 for the current state) as one number for a
 * stat panel: the worst state present wins, and no series at all (exporter not scraped) is 3.
 */
const tunnelState = (sel: string) =>
  [
    `max(wg_egress_tunnel_state{${sel},state="down"} == 1) * 2`,
    `max(wg_egress_tunnel_state{${sel},state="stale"} == 1)`,
    `max(wg_egress_tunnel_state{${sel},state="up"} == 1) * 0`,
    "vector(3)",
  ].join(" or ");
const TUNNEL_STATE = tunnelState(IF);

const STATE_MAPPINGS = () => [
  {
    type: "value",
    options: Object.fromEntries(
      STATE_WORDS.map(([text, color], i) => [String(i), { text, color, index: i }]),
    ),
  },
];
const STATE_WORDS = [
  ["UP", "green"],
  ["STALE", "orange"],
  ["DOWN", "red"],
  ["NO METRICS", "red"],
] as const;

/** One row of panels per exit (its interface for the gateway's metrics, its name for the proxy's). */
function exitRows(config: Config, firstId: number, y: number): Panel[] {
  const out: Panel[] = [];
  let id = firstId;
  for (const x of exitsOf(config)) {
    const ifsel = `interface="${x.interface}"`;
    const exsel = `exit="${x.name}"`;
    out.push(
      {
        id: id++,
        type: "row",
        title: `Exit ${x.name} (${x.interface})`,
        collapsed: false,
        gridPos: { x: 0, y, w: 24, h: 1 },
        panels: [],
      },
      panel(
        id++,
        "stat",
        `${x.name}: tunnel state`,
        { x: 0, y: y + 1, w: 4, h: 6 },
        [{ expr: tunnelState(ifsel), legendFormat: "state" }],
        { thresholds: thresholds(["green", null], ["orange", 1], ["red", 2]), mappings: STATE_MAPPINGS() },
        `Exit ${x.name}'s health: its interface's state as the exporter reports it (see Tunnel state).`,
      ),
      panel(
        id++,
        "stat",
        `${x.name}: open connections`,
        { x: 4, y: y + 1, w: 4, h: 6 },
        [{ expr: `sum(wg_egress_proxy_exit_open_connections{${exsel}}) or vector(0)`, legendFormat: "open" }],
        { unit: "none", thresholds: thresholds(["green", null]) },
        `Proxy connections open through exit ${x.name} now.`,
      ),
      panel(
        id++,
        "timeseries",
        `${x.name}: handshake age`,
        { x: 8, y: y + 1, w: 8, h: 6 },
        [{ expr: `wireguard_latest_handshake_delay_seconds{${ifsel}}`, legendFormat: "{{interface}}" }],
        {
          unit: "s",
          min: 0,
          thresholds: SEED_THRESHOLDS,
          custom: { thresholdsStyle: { mode: "line+area" } },
        },
        `Seconds since exit ${x.name}'s latest WireGuard handshake.`,
      ),
      panel(
        id++,
        "timeseries",
        `${x.name}: connections and bytes`,
        { x: 16, y: y + 1, w: 8, h: 6 },
        [
          {
            expr: `sum by (result) (rate(wg_egress_proxy_exit_connections_total{${exsel}}[5m]))`,
            legendFormat: "connections {{result}}",
          },
          {
            expr: `sum by (direction) (rate(wg_egress_proxy_exit_bytes_total{${exsel}}[5m]))`,
            legendFormat: "bytes {{direction}}",
          },
        ],
        { unit: "short", min: 0 },
        `Proxy connections per second through exit ${x.name} by result, and bytes per second relayed through it (up = to the destination).`,
      ),
    );
    y += 7;
  }
  return out;
}

export function dashboard(config: Config): Record<string, unknown> {
  const ifname = config.gateway.interface;
  const several = exitsOf(config).length > 1;
  const panels = [
    panel(
      1,
      "stat",
      "Tunnel state",
      { x: 0, y: 0, w: 6, h: 6 },
      [{ expr: TUNNEL_STATE, legendFormat: "state" }],
      { thresholds: thresholds(["green", null], ["orange", 1], ["red", 2]), mappings: STATE_MAPPINGS() },
      "wg_egress_tunnel_state, the gateway's own verdict (as `gateway status`): UP = handshake < 150 s ago, STALE < 300 s, DOWN = older or never, link down, interface gone or no tunnel route; NO METRICS = the exporter is not scraped.",
    ),
    boolStat(
      2,
      "Kill switch",
      6,
      `min(wg_egress_killswitch_armed{${IF}})`,
      ["NOT ARMED", "ARMED"],
      "Armed = nft table, unreachable routes and ip rules all present: a dropped tunnel cannot leak via the home line.",
    ),
    panel(
      3,
      "stat",
      "Active proxy connections",
      { x: 12, y: 0, w: 6, h: 6 },
      [{ expr: "sum(wg_egress_proxy_active_connections)", legendFormat: "active" }],
      { unit: "none", thresholds: thresholds(["green", null]) },
      "Client connections open in the SOCKS5 proxy (from the proxy's own /metrics).",
    ),
    boolStat(
      4,
      "Exit IP check",
      18,
      `min(wg_egress_exit_ip_check_ok{${IF}})`,
      ["WRONG IP", "EXIT IP"],
      "Last `wg-egress metrics --ip-check-url` result: the echo service saw the exit's IP through the proxy.",
    ),
    panel(
      5,
      "timeseries",
      "Handshake age",
      { x: 0, y: 6, w: 12, h: 8 },
      [
        {
          expr: `wireguard_latest_handshake_delay_seconds{${IF}}`,
          legendFormat: "{{interface}} {{friendly_name}}",
        },
      ],
      { unit: "s", min: 0, thresholds: SEED_THRESHOLDS, custom: { thresholdsStyle: { mode: "line+area" } } },
      "Seconds since the latest WireGuard handshake (renewed about every 2 minutes while traffic or keepalives flow).",
    ),
    panel(
      6,
      "timeseries",
      "Tunnel throughput",
      { x: 12, y: 6, w: 12, h: 8 },
      [
        { expr: `rate(wireguard_sent_bytes_total{${IF}}[5m])`, legendFormat: "out (sent to the exit)" },
        {
          expr: `rate(wireguard_received_bytes_total{${IF}}[5m])`,
          legendFormat: "in (received from the exit)",
        },
      ],
      { unit: "Bps", min: 0 },
      "Encrypted bytes per second on the tunnel, seen from the gateway.",
    ),
    panel(
      7,
      "timeseries",
      "Proxy connections by result",
      { x: 0, y: 14, w: 12, h: 8 },
      [
        {
          expr: "sum by (result, reply) (rate(wg_egress_proxy_connections_total[5m]))",
          legendFormat: "{{result}} {{reply}}",
        },
      ],
      { unit: "reqps", min: 0 },
      "Finished proxy connections per second, by result and SOCKS reply.",
    ),
    panel(
      8,
      "timeseries",
      "Refusals by reason",
      { x: 12, y: 14, w: 12, h: 8 },
      [
        {
          expr: "sum by (reason) (rate(wg_egress_proxy_clients_refused_total[5m]))",
          legendFormat: "client: {{reason}}",
        },
        {
          expr: `sum by (reply) (rate(wg_egress_proxy_connections_total{result="refused"}[5m]))`,
          legendFormat: "request: {{reply}}",
        },
      ],
      { unit: "reqps", min: 0 },
      "Clients dropped on accept (allow-list, limits) and requests refused by the destination policy.",
    ),
    panel(
      9,
      "timeseries",
      "Proxy throughput",
      { x: 0, y: 22, w: 24, h: 8 },
      [{ expr: "sum by (direction) (rate(wg_egress_proxy_bytes_total[5m]))", legendFormat: "{{direction}}" }],
      { unit: "Bps", min: 0 },
      "Bytes relayed by the proxy: up = client to destination, down = destination to client.",
    ),
    ...(several ? exitRows(config, 10, 30) : []),
  ];
  return {
    uid: "wg-egress",
    title: "wg-egress: WireGuard VPN egress",
    tags: ["wg-egress", "wireguard"],
    timezone: "browser",
    schemaVersion: 39,
    version: 1,
    editable: true,
    graphTooltip: 1,
    refresh: "30s",
    time: { from: "now-6h", to: "now" },
    templating: {
      list: [
        {
          name: "datasource",
          label: "Data source",
          type: "datasource",
          query: "prometheus",
          current: {},
          hide: 0,
        },
        {
          name: "interface",
          label: "Interface",
          type: "query",
          datasource: DS,
          query: {
            // The exporter reports the state of its interface even while the interface is gone.
            query: "label_values(wg_egress_tunnel_state, interface)",
            refId: "interface",
          },
          definition: "label_values(wg_egress_tunnel_state, interface)",
          // Several exits: all of them by default (the top row shows the worst).
          current: several
            ? { text: ["All"], value: ["$__all"], selected: true }
            : { text: ifname, value: ifname, selected: true },
          refresh: 2,
          includeAll: several,
          multi: several,
          hide: 0,
        },
      ],
    },
    annotations: { list: [] },
    panels,
  };
}

export function renderGrafana(config: Config): string {
  return `${JSON.stringify(dashboard(config), null, 2)}\n`;
}
