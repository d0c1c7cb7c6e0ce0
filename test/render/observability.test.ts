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
  fieldConfig: { defaults: { thresholds?: { steps: { color: string; value: number | null }[] } } };
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

test("the seed's panels: tunnel state 150/300, handshake age, throughput in/out, connections, refusals", () => {
  const steps = byTitle("Tunnel state").fieldConfig.defaults.thresholds!.steps;
  assert.deepEqual(
    steps.map((s) => s.value),
    [null, 150, 300],
  );
  assert.match(byTitle("Handshake age").targets[0].expr, /^wireguard_latest_handshake_delay_seconds\{/);
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

test("promtool test rules: stale after 150 s (warning), down after 300 s (critical)", async () => {
  writeFileSync(join(dir, "alerts.yml"), renderAlerts(config));
  const rules = Object.fromEntries(alertGroups(config)[0].rules.map((r) => [r.alert, r]));
  // The summaries template the value with humanizeDuration: 200 s = "3m 20s", 400 s = "6m 40s".
  const expect = (alert: string, value: string) => ({
    exp_labels: { interface: "wg-egress", severity: rules[alert].labels.severity },
    exp_annotations: {
      summary: rules[alert].annotations.summary.replace("{{ $value | humanizeDuration }}", value),
      description: rules[alert].annotations.description,
    },
  });
  const series = 'wireguard_latest_handshake_delay_seconds{interface="wg-egress"}';
  const tests = {
    rule_files: ["alerts.yml"],
    evaluation_interval: "1m",
    tests: [
      {
        interval: "1m",
        // 100 s, then 200 s from minute 1, then 400 s from minute 4.
        input_series: [{ series, values: "100 200 200 200 400 400 400" }],
        alert_rule_test: [
          { eval_time: "0m", alertname: "WgEgressTunnelStale", exp_alerts: [] },
          {
            eval_time: "3m",
            alertname: "WgEgressTunnelStale",
            exp_alerts: [expect("WgEgressTunnelStale", "3m 20s")],
          },
          { eval_time: "3m", alertname: "WgEgressTunnelDown", exp_alerts: [] },
          {
            eval_time: "6m",
            alertname: "WgEgressTunnelDown",
            exp_alerts: [expect("WgEgressTunnelDown", "6m 40s")],
          },
          { eval_time: "6m", alertname: "WgEgressExporterAbsent", exp_alerts: [] },
        ],
      },
    ],
  };
  writeFileSync(join(dir, "alerts.test.yml"), stringify(tests));
  const r = await run("promtool", ["test", "rules", join(dir, "alerts.test.yml")], { allowFail: true });
  assert.equal(r.code, 0, r.stdout + r.stderr);
});
