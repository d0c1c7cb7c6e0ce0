import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { before, test } from "node:test";
import { stringify } from "yaml";
import { parseConfig } from "../../src/config/load.js";
import { renderAlerts } from "../../src/render/alerts.js";
import { renderGrafana } from "../../src/render/grafana.js";
import { run } from "../../src/util/run.js";
import { tempDir } from "../support/tmp.js";
import { requireTools } from "../support/tools.js";

/** The dashboard and alerts with two exits: a row per exit, every exit's interface alerted on. */

before(() => requireTools("promtool"));

const dir = tempDir("wgetest-render-exits-");
const config = parseConfig({
  exits: [{ name: "fra" }, { name: "hel", address: "10.100.1.2/24", interface: "wge.hel" }],
});

interface Panel {
  id: number;
  type: string;
  title: string;
  gridPos: { x: number; y: number; w: number; h: number };
  targets?: { refId: string; expr: string }[];
}
const dash = JSON.parse(renderGrafana(config));
const panels: Panel[] = dash.panels;
const byTitle = (t: string) => panels.find((p) => p.title === t)!;

async function promtool(file: string, body: unknown): Promise<void> {
  writeFileSync(join(dir, file), typeof body === "string" ? body : stringify(body));
  const args = file.endsWith(".test.yml") ? ["test", "rules"] : ["check", "rules"];
  const r = await run("promtool", [...args, join(dir, file)], { allowFail: true });
  assert.equal(r.code, 0, r.stdout + r.stderr);
}

test("a row per exit: its state, open connections, handshake age, connections and bytes; the interface variable takes all", async () => {
  const rows = panels.filter((p) => p.type === "row").map((p) => p.title);
  assert.deepEqual(rows, ["Exit fra (wg-egress)", "Exit hel (wge.hel)"]);
  assert.equal(new Set(panels.map((p) => p.id)).size, panels.length, "unique panel ids");
  for (const p of panels) assert.ok(p.gridPos.x + p.gridPos.w <= 24, p.title);
  assert.match(
    byTitle("hel: tunnel state").targets![0].expr,
    /wg_egress_tunnel_state\{interface="wge\.hel",state="down"\}/,
  );
  assert.match(
    byTitle("hel: open connections").targets![0].expr,
    /wg_egress_proxy_exit_open_connections\{exit="hel"\}/,
  );
  assert.match(
    byTitle("hel: handshake age").targets![0].expr,
    /wireguard_latest_handshake_delay_seconds\{interface="wge\.hel"\}/,
  );
  const [conns, bytes] = byTitle("hel: connections and bytes").targets!;
  assert.match(conns.expr, /wg_egress_proxy_exit_connections_total\{exit="hel"\}/);
  assert.match(bytes.expr, /wg_egress_proxy_exit_bytes_total\{exit="hel"\}/);
  const iface = dash.templating.list.find((v: { name: string }) => v.name === "interface");
  assert.deepEqual([iface.multi, iface.includeAll, iface.current.value], [true, true, ["$__all"]]);
  // Every query is valid PromQL.
  const rules = panels.flatMap((p) =>
    (p.targets ?? []).map((t) => ({
      record: `dashboard:panel${p.id}:${t.refId}`,
      expr: t.expr.replaceAll("$interface", ".+"),
    })),
  );
  await promtool("dashboard-rules.yml", { groups: [{ name: "dashboard", rules }] });
  // One exit: no exit rows, the variable as before.
  const one = JSON.parse(renderGrafana(parseConfig({})));
  assert.ok(!one.panels.some((p: Panel) => p.type === "row"));
});

test("promtool: each exit's state panel shows that exit alone", async () => {
  const expr = byTitle("hel: tunnel state").targets![0].expr;
  const series = (i: string, s: string, v: string) => ({
    series: `wg_egress_tunnel_state{interface="${i}",state="${s}"}`,
    values: `${v}x2`,
  });
  await promtool("exit-state.test.yml", {
    rule_files: [],
    evaluation_interval: "1m",
    tests: [
      ["fra down, hel up", "0", "1", 0],
      ["fra up, hel down", "1", "0", 2],
    ].map(([name, fraUp, helUp, value]) => ({
      name,
      interval: "1m",
      input_series: [
        series("wg-egress", "up", fraUp as string),
        series("wg-egress", "down", fraUp === "1" ? "0" : "1"),
        series("wge.hel", "up", helUp as string),
        series("wge.hel", "down", helUp === "1" ? "0" : "1"),
      ],
      promql_expr_test: [{ expr, eval_time: "1m", exp_samples: [{ labels: "{}", value }] }],
    })),
  });
});

test("promtool: the alerts cover every exit's interface; one exit down fires for it alone", async () => {
  await promtool("alerts.yml", renderAlerts(config));
  const wg = (i: string) => `wireguard_latest_handshake_seconds{interface="${i}",public_key="k="}`;
  const delay = (i: string) => `wireguard_latest_handshake_delay_seconds{interface="${i}",public_key="k="}`;
  const up = 'up{job="wg-egress-gateway",instance="gw:9586"}';
  const down = (i: string) => ({
    exp_labels: { interface: i, severity: "critical" },
    exp_annotations: {
      summary: `wg-egress tunnel ${i} is down`,
      description: renderAlerts(config)
        .split("\n")
        .find((l) => l.includes("The gateway reports the tunnel down"))!
        .replace(/^\s*description: "?|"$/g, ""),
    },
  });
  /** The exporter answering, with a fresh handshake on each of these interfaces. */
  const fresh = (...ifs: string[]) => [
    ...ifs.flatMap((i) => [
      { series: wg(i), values: "1000x5" },
      { series: delay(i), values: "10x5" },
    ]),
    { series: up, values: "1x5" },
  ];
  const state = (i: string, down: string) => ({
    series: `wg_egress_tunnel_state{interface="${i}",state="down"}`,
    values: `${down}x5`,
  });
  const cases: [string, unknown[], ReturnType<typeof down>[]][] = [
    [
      "hel's state down, fra's up",
      [state("wg-egress", "0"), state("wge.hel", "1"), ...fresh("wg-egress", "wge.hel")],
      [down("wge.hel")],
    ],
    ["hel's interface gone while the exporter answers", fresh("wg-egress"), [down("wge.hel")]],
    ["both fine", fresh("wg-egress", "wge.hel"), []],
  ];
  await promtool("alerts.test.yml", {
    rule_files: ["alerts.yml"],
    evaluation_interval: "1m",
    tests: cases.map(([name, input_series, exp_alerts]) => ({
      name,
      interval: "1m",
      input_series,
      alert_rule_test: [{ eval_time: "3m", alertname: "WgEgressTunnelDown", exp_alerts }],
    })),
  });
});
