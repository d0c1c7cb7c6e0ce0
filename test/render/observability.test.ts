import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { before, test } from "node:test";
import { stringify } from "yaml";
import { parseConfig } from "../../src/config/load.js";
import { alertGroups, renderAlerts } from "../../src/render/alerts.js";
import { renderGrafana } from "../../src/render/grafana.js";
import { run } from "../../src/util/run.js";
import { tempDir } from "../support/tmp.js";
import { requireTools } from "../support/tools.js";

before(() => requireTools("promtool"));

const dir = tempDir("wgetest-render-obs-");
const config = parseConfig({});

interface Panel {
  id: number;
  type: string;
  title: string;
  datasource: { type: string; uid: string };
  gridPos: { x: number; y: number; w: number; h: number };
  targets: { refId: string; expr: string; datasource: { uid: string } }[];
  fieldConfig: {
    defaults: {
      thresholds?: { steps: { color: string; value: number | null }[] };
      mappings?: { options: Record<string, { text: string }> }[];
    };
  };
}
const dash = JSON.parse(renderGrafana(config));
// biome-ignore lint/suspicious/noTemplateCurlyInString: Grafana's variable syntax
const DS_UID = "${datasource}";
const panels: Panel[] = dash.panels;
const byTitle = (t: string) => panels.find((p) => p.title === t)!;

test("the dashboard is a current Grafana JSON model with the data source as a variable", () => {
  assert.ok(dash.schemaVersion >= 39);
  assert.equal(dash.uid, "wg-egress");
  const ds = dash.templating.list.find((v: { name: string }) => v.name === "datasource");
  assert.deepEqual([ds.type, ds.query], ["datasource", "prometheus"]);
  assert.equal(
    dash.templating.list.find((v: { name: string }) => v.name === "interface").current.value,
    "wg-egress",
  );
  assert.equal(new Set(panels.map((p) => p.id)).size, panels.length, "unique panel ids");
  for (const p of panels) {
    assert.equal(p.datasource.uid, DS_UID, p.title);
    assert.ok(p.gridPos.x + p.gridPos.w <= 24, `${p.title} fits the 24-column grid`);
    assert.ok(p.targets.length > 0 && p.targets.every((t) => t.expr && t.datasource.uid === DS_UID));
  }
});

test("the seed's panels: tunnel state, handshake age 150/300, throughput in/out, connections, refusals", () => {
  const state = byTitle("Tunnel state");
  assert.equal(state.targets.length, 1);
  assert.match(state.targets[0].expr, /wg_egress_tunnel_state\{/);
  assert.doesNotMatch(state.targets[0].expr, /handshake/);
  const words = state.fieldConfig.defaults.mappings![0].options;
  assert.deepEqual(
    Object.entries(words).map(([v, o]) => `${v}=${o.text}`),
    ["0=UP", "1=STALE", "2=DOWN", "3=NO METRICS"],
  );
  const age = byTitle("Handshake age");
  assert.match(age.targets[0].expr, /^wireguard_latest_handshake_delay_seconds\{/);
  assert.deepEqual(
    age.fieldConfig.defaults.thresholds!.steps.map((s) => s.value),
    [null, 150, 300],
  );
  assert.equal(
    dash.templating.list.find((v: { name: string }) => v.name === "interface").definition,
    "label_values(wg_egress_tunnel_state, interface)",
    "the interface stays selectable while it is gone",
  );
  const tp = byTitle("Tunnel throughput").targets.map((t) => t.expr);
  assert.ok(tp.some((e) => e.startsWith("rate(wireguard_sent_bytes_total{") && e.endsWith("[5m])")));
  assert.ok(tp.some((e) => e.startsWith("rate(wireguard_received_bytes_total{")));
  assert.match(byTitle("Active proxy connections").targets[0].expr, /wg_egress_proxy_active_connections/);
  assert.match(byTitle("Refusals by reason").targets[0].expr, /by \(reason\)/);
});

test("every dashboard query is valid PromQL (promtool)", async () => {
  const rules = panels.flatMap((p) =>
    p.targets.map((t) => ({
      record: `dashboard:panel${p.id}:${t.refId}`,
      expr: t.expr.replaceAll("$interface", ".+"),
    })),
  );
  writeFileSync(join(dir, "dashboard-rules.yml"), stringify({ groups: [{ name: "dashboard", rules }] }));
  const r = await run("promtool", ["check", "rules", join(dir, "dashboard-rules.yml")], { allowFail: true });
  assert.equal(r.code, 0, r.stdout + r.stderr);
});

test("the alerting rules pass promtool check rules", async () => {
  writeFileSync(join(dir, "alerts.yml"), renderAlerts(config));
  const r = await run("promtool", ["check", "rules", join(dir, "alerts.yml")], { allowFail: true });
  assert.equal(r.code, 0, r.stdout + r.stderr);
  assert.match(r.stdout, /SUCCESS: 6 rules found/);
});

const rules = Object.fromEntries(alertGroups(config)[0].rules.map((r) => [r.alert, r]));
const IF = 'interface="wg-egress"';
const GW_UP = 'up{job="wg-egress-gateway",instance="10.1.0.1:9586"}';
const wg = (name: string) => `wireguard_${name}{${IF},public_key="exitpub=",allowed_ips="0.0.0.0/0"}`;
const state = (s: string) => `wg_egress_tunnel_state{${IF},state="${s}"}`;

/** An alert as promtool reports it: labels, and annotations with their templates filled in. */
function fired(alert: string, labels: Record<string, string>, value = "") {
  const fill = (t: string) =>
    t
      .replaceAll("{{ $labels.interface }}", labels.interface ?? "")
      .replace(/\{\{ \$value \| \w+ \}\}/, value);
  const { summary, description } = rules[alert].annotations;
  return {
    exp_labels: { ...labels, severity: rules[alert].labels.severity },
    exp_annotations: { summary: fill(summary), description: fill(description) },
  };
}

interface Case {
  name: string;
  /** series → promtool values, one sample a minute */
  series: Record<string, string>;
  /** [minute, alert, the alerts expected then] */
  expect: [string, string, ReturnType<typeof fired>[]][];
}

const ifaceOnly = { interface: "wg-egress" };

/** Our exporter with a fresh handshake (10 s) and the given state. */
const freshTunnel = (current: "up" | "down") => ({
  [state("up")]: current === "up" ? "1x5" : "0x5",
  [state("down")]: current === "down" ? "1x5" : "0x5",
  [wg("latest_handshake_delay_seconds")]: "10x5",
  [wg("latest_handshake_seconds")]: "1000x5",
  [GW_UP]: "1x5",
});
const CASES: Case[] = [
  {
    name: "handshake 100 s, then 200 s, then 400 s old (an exporter with no state metric)",
    series: {
      [wg("latest_handshake_delay_seconds")]: "100 200 200 200 400 400 400",
      [wg("latest_handshake_seconds")]: "1000x6",
      [GW_UP]: "1x6",
    },
    expect: [
      ["0m", "WgEgressTunnelStale", []],
      [
        "3m",
        "WgEgressTunnelStale",
        [
          fired(
            "WgEgressTunnelStale",
            { ...ifaceOnly, public_key: "exitpub=", allowed_ips: "0.0.0.0/0" },
            "3m 20s",
          ),
        ],
      ],
      ["3m", "WgEgressTunnelDown", []],
      ["6m", "WgEgressTunnelDown", [fired("WgEgressTunnelDown", ifaceOnly)]],
      ["6m", "WgEgressExporterAbsent", []],
    ],
  },
  {
    name: "the exporter says down (e.g. no tunnel route) while the handshake is fresh",
    series: freshTunnel("down"),
    expect: [
      ["0m", "WgEgressTunnelDown", []], // pending for 1m
      ["2m", "WgEgressTunnelDown", [fired("WgEgressTunnelDown", ifaceOnly)]],
      ["2m", "WgEgressTunnelStale", []],
    ],
  },
  {
    name: "the exporter says up",
    series: freshTunnel("up"),
    expect: [
      ["5m", "WgEgressTunnelDown", []],
      ["5m", "WgEgressTunnelStale", []],
      ["5m", "WgEgressExporterAbsent", []],
    ],
  },
  {
    name: "interface gone, our exporter answers: down by state and by absence, one alert",
    series: { [state("down")]: "1x5", [state("up")]: "0x5", [GW_UP]: "1x5" },
    expect: [["2m", "WgEgressTunnelDown", [fired("WgEgressTunnelDown", ifaceOnly)]]],
  },
  {
    name: "interface gone, an exporter without the state metric answers (another interface still there)",
    series: {
      'wireguard_latest_handshake_seconds{interface="wg-other",public_key="x="}': "1000x5",
      [GW_UP]: "1x5",
    },
    expect: [
      ["0m", "WgEgressTunnelDown", []],
      ["2m", "WgEgressTunnelDown", [fired("WgEgressTunnelDown", ifaceOnly)]],
    ],
  },
  {
    name: "the exporter's target is down: no tunnel verdict, the exporter alert instead",
    series: { [GW_UP]: "0x7" },
    expect: [
      ["6m", "WgEgressTunnelDown", []],
      ["4m", "WgEgressExporterAbsent", []],
      ["6m", "WgEgressExporterAbsent", [fired("WgEgressExporterAbsent", { job: "wg-egress-gateway" })]],
    ],
  },
  {
    name: "no wg-egress-gateway job at all",
    series: { 'up{job="node"}': "1x7" },
    expect: [
      ["6m", "WgEgressTunnelDown", []],
      ["6m", "WgEgressExporterAbsent", [fired("WgEgressExporterAbsent", { job: "wg-egress-gateway" })]],
    ],
  },
  {
    name: "kill switch not armed, exit IP wrong",
    series: { [`wg_egress_killswitch_armed{${IF}}`]: "0x3", [`wg_egress_exit_ip_check_ok{${IF}}`]: "0x3" },
    expect: [
      ["0m", "WgEgressKillSwitchNotArmed", []],
      ["2m", "WgEgressKillSwitchNotArmed", [fired("WgEgressKillSwitchNotArmed", ifaceOnly)]],
      ["0m", "WgEgressExitIpWrong", [fired("WgEgressExitIpWrong", ifaceOnly)]],
    ],
  },
  {
    name: "kill switch armed, exit IP right",
    series: { [`wg_egress_killswitch_armed{${IF}}`]: "1x3", [`wg_egress_exit_ip_check_ok{${IF}}`]: "1x3" },
    expect: [
      ["2m", "WgEgressKillSwitchNotArmed", []],
      ["2m", "WgEgressExitIpWrong", []],
    ],
  },
  {
    name: "20% of proxy connections fail for 10 minutes",
    series: {
      'wg_egress_proxy_connections_total{result="ok",reply="succeeded"}': "0+80x20",
      'wg_egress_proxy_connections_total{result="failed",reply="host_unreachable"}': "0+20x20",
    },
    expect: [
      ["5m", "WgEgressProxyErrors", []],
      ["20m", "WgEgressProxyErrors", [fired("WgEgressProxyErrors", {}, "20%")]],
    ],
  },
  {
    name: "5% of proxy connections fail",
    series: {
      'wg_egress_proxy_connections_total{result="ok",reply="succeeded"}': "0+95x20",
      'wg_egress_proxy_connections_total{result="failed",reply="host_unreachable"}': "0+5x20",
    },
    expect: [["20m", "WgEgressProxyErrors", []]],
  },
];

test("every rendered alert has a case where it fires and one where it does not", () => {
  for (const name of Object.keys(rules)) {
    const outcomes = CASES.flatMap((c) =>
      c.expect.filter(([, a]) => a === name).map(([, , exp]) => exp.length > 0),
    );
    assert.ok(outcomes.includes(true), `${name} fires somewhere`);
    assert.ok(outcomes.includes(false), `${name} stays silent somewhere`);
  }
});

test("promtool test rules: each alert fires when it should and only then", async () => {
  writeFileSync(join(dir, "alerts.yml"), renderAlerts(config));
  const tests = {
    rule_files: ["alerts.yml"],
    evaluation_interval: "1m",
    tests: CASES.map((c) => ({
      name: c.name,
      interval: "1m",
      input_series: Object.entries(c.series).map(([series, values]) => ({ series, values })),
      alert_rule_test: c.expect.map(([eval_time, alertname, exp_alerts]) => ({
        eval_time,
        alertname,
        exp_alerts,
      })),
    })),
  };
  writeFileSync(join(dir, "alerts.test.yml"), stringify(tests));
  const r = await run("promtool", ["test", "rules", join(dir, "alerts.test.yml")], { allowFail: true });
  assert.equal(r.code, 0, r.stdout + r.stderr);
});

test("promtool: the dashboard's tunnel state is the exporter's state, NO METRICS without one", async () => {
  const expr = byTitle("Tunnel state").targets[0].expr.replaceAll("$interface", "wg-egress");
  const values: [string, Record<string, string>, number][] = [
    ["up", { up: "1", stale: "0", down: "0" }, 0],
    ["stale", { up: "0", stale: "1", down: "0" }, 1],
    ["down", { up: "0", stale: "0", down: "1" }, 2],
    ["no series", {}, 3],
    // Another interface's state does not leak into this one's.
    ["other interface down", { other: "1" }, 3],
  ];
  const tests = {
    rule_files: [],
    evaluation_interval: "1m",
    tests: values.map(([name, states, value]) => ({
      name,
      interval: "1m",
      input_series: [
        ...Object.entries(states).map(([s, v]) =>
          s === "other"
            ? { series: 'wg_egress_tunnel_state{interface="wg-other",state="down"}', values: `${v}x2` }
            : { series: state(s), values: `${v}x2` },
        ),
        { series: 'up{job="node"}', values: "1x2" },
      ],
      promql_expr_test: [{ expr, eval_time: "1m", exp_samples: [{ labels: "{}", value }] }],
    })),
  };
  writeFileSync(join(dir, "dashboard.test.yml"), stringify(tests));
  const r = await run("promtool", ["test", "rules", join(dir, "dashboard.test.yml")], { allowFail: true });
  assert.equal(r.code, 0, r.stdout + r.stderr);
});
