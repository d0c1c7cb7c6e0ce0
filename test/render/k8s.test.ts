import assert from "node:assert/strict";
import { test } from "node:test";
import { PrometheusRule } from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1";
import { ScrapeConfig } from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1alpha1";
import { EndpointSlice } from "kubernetes-models/discovery.k8s.io/v1";
import { ConfigMap, Service } from "kubernetes-models/v1";
import { parseAllDocuments } from "yaml";
import { parseConfig } from "../../src/config/load.js";
import { k8sObjects, renderK8s } from "../../src/render/k8s.js";
import { UserError } from "../../src/util/errors.js";

/**
 * Every manifest is validated against its schema: the Kubernetes OpenAPI schemas (kubernetes-models)
 * and the prometheus-operator CRD schemas (@kubernetes-models/prometheus-operator, ScrapeConfig
 * v1alpha1 and PrometheusRule v1), through ajv.
 */

// biome-ignore lint/suspicious/noExplicitAny: the model classes take their own typed data
const MODELS: Record<string, new (data: any) => { validate(): void }> = {
  Service,
  EndpointSlice,
  ConfigMap,
  ScrapeConfig,
  PrometheusRule,
};

const seedLike = parseConfig({
  proxy: { listen: ["10.1.0.1:1080"], metrics: "10.1.0.1:9587" },
  gateway: { metrics: "0.0.0.0:9586" },
});
const opts = { namespace: "infra", name: "egress-proxy", labels: { release: "kube-prometheus-stack" } };

// biome-ignore lint/suspicious/noExplicitAny: parsed YAML, checked field by field below
function docs(text: string): Record<string, any>[] {
  return parseAllDocuments(text).map((d) => {
    assert.deepEqual(d.errors, []);
    return d.toJSON();
  });
}

test("every rendered manifest validates against its schema", () => {
  const objects = docs(renderK8s(seedLike, opts));
  assert.deepEqual(
    objects.map((o) => o.kind),
    ["Service", "EndpointSlice", "ScrapeConfig", "ScrapeConfig", "ConfigMap", "PrometheusRule"],
  );
  for (const o of objects) {
    const { apiVersion: _a, kind, ...data } = o;
    assert.doesNotThrow(() => new MODELS[kind](data).validate(), `${kind} ${o.metadata.name}`);
  }
});

test("the validator is live: it rejects a broken EndpointSlice", () => {
  const slice = k8sObjects(seedLike, opts).objects[1] as Record<string, unknown>;
  const { apiVersion: _a, kind: _k, ...data } = slice;
  assert.throws(() => new EndpointSlice({ ...data, addressType: "IPv5" } as never).validate());
});

test("pods reach the proxy by name: Service without selector + EndpointSlice at the LAN address", () => {
  const [svc, slice] = docs(renderK8s(seedLike, opts));
  assert.equal(svc.spec.selector, undefined);
  assert.deepEqual(svc.spec.ports, [{ name: "socks", port: 1080, targetPort: 1080, protocol: "TCP" }]);
  assert.equal(slice.metadata.labels["kubernetes.io/service-name"], "egress-proxy");
  assert.equal(slice.metadata.namespace, "infra");
  assert.deepEqual(slice.endpoints, [{ addresses: ["10.1.0.1"], conditions: { ready: true } }]);
  assert.equal(slice.ports[0].name, svc.spec.ports[0].name);
  assert.match(renderK8s(seedLike, opts), /socks5:\/\/egress-proxy\.infra\.svc:1080/);
});

test("two scrape targets: the gateway's exporter and the proxy's own /metrics", () => {
  const objects = docs(renderK8s(seedLike, opts));
  const scrapes = objects.filter((o) => o.kind === "ScrapeConfig");
  assert.deepEqual(
    scrapes.map((s) => [
      s.spec.staticConfigs[0].targets[0],
      s.spec.staticConfigs[0].labels.job,
      s.metadata.labels.release,
    ]),
    [
      ["10.1.0.1:9586", "wg-egress-gateway", "kube-prometheus-stack"],
      ["10.1.0.1:9587", "wg-egress-proxy", "kube-prometheus-stack"],
    ],
  );
});

test("dashboard ConfigMap carries the sidecar label and the dashboard JSON; the rule has the seed's thresholds", () => {
  const objects = docs(renderK8s(seedLike, opts));
  const cm = objects.find((o) => o.kind === "ConfigMap")!;
  assert.equal(cm.metadata.labels.grafana_dashboard, "1");
  assert.equal(JSON.parse(cm.data["wg-egress.json"]).uid, "wg-egress");
  const rules = objects.find((o) => o.kind === "PrometheusRule")!.spec.groups[0].rules;
  const byName = Object.fromEntries(rules.map((r: { alert: string }) => [r.alert, r]));
  assert.match(
    byName.WgEgressTunnelStale.expr,
    /wireguard_latest_handshake_delay_seconds\{interface="wg-egress"\} > 150$/,
  );
  assert.equal(byName.WgEgressTunnelStale.labels.severity, "warning");
  // Down by the exporter's state, by handshake age, or by the interface's absence from a scraped job.
  const down = byName.WgEgressTunnelDown.expr;
  assert.ok(down.includes('wg_egress_tunnel_state{interface="wg-egress",state="down"}'), down);
  assert.ok(down.includes('wireguard_latest_handshake_delay_seconds{interface="wg-egress"}) > 300'), down);
  assert.ok(down.includes('absent(wireguard_latest_handshake_seconds{interface="wg-egress"})'), down);
  // The rules name the job the gateway's ScrapeConfig sets.
  const gatewayJob = objects.find((o) => o.kind === "ScrapeConfig")!.spec.staticConfigs[0].labels.job;
  assert.ok(down.includes(`up{job="${gatewayJob}"}`), down);
  assert.equal(byName.WgEgressTunnelDown.labels.severity, "critical");
  assert.ok(byName.WgEgressProxyErrors);
});

test("loopback metrics are refused (nothing listens where Prometheus would scrape); wildcard ones take the LAN address; no LAN address is an error", () => {
  // The default gateway.metrics, 127.0.0.1:9586: a scrape of 10.1.0.1:9586 would find nothing there.
  for (const [key, config] of [
    ["gateway.metrics", { proxy: { listen: ["10.1.0.1:1080"] } }],
    [
      "proxy.metrics",
      { proxy: { listen: ["10.1.0.1:1080"], metrics: "[::1]:9587" }, gateway: { metrics: "10.1.0.1:9586" } },
    ],
  ] as const)
    assert.throws(
      () => k8sObjects(parseConfig(config), opts),
      (e) =>
        e instanceof UserError &&
        e.message.startsWith(`${key} is `) &&
        /\(loopback\): Prometheus in the cluster cannot reach it, and nothing listens on 10\.1\.0\.1:958[67]; set .* to 10\.1\.0\.1:958[67] \(or 0\.0\.0\.0:958[67]\)$/.test(
          e.message,
        ),
    );
  const { warnings, objects } = k8sObjects(
    parseConfig({ proxy: { listen: ["10.1.0.1:1080"] }, gateway: { metrics: "0.0.0.0:9586" } }),
    opts,
  );
  const scrapes = objects.filter((o) => o.kind === "ScrapeConfig") as {
    spec: { staticConfigs: { targets: string[] }[] };
  }[];
  assert.deepEqual(
    scrapes.map((s) => s.spec.staticConfigs[0].targets),
    [["10.1.0.1:9586"]],
  );
  assert.match(warnings.join("\n"), /proxy\.metrics is unset/);
  assert.throws(
    () => k8sObjects(parseConfig({}), opts),
    (e) => e instanceof UserError && /proxy\.listen/.test(e.message),
  );
  const v6 = k8sObjects(parseConfig({ gateway: { metrics: "[::]:9586" } }), { ...opts, address: "fd00::1" })
    .objects[1] as {
    addressType: string;
  };
  assert.equal(v6.addressType, "IPv6");
});
